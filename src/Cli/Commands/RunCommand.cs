using System.CommandLine;
using System.Runtime.InteropServices;
using ZonLb.Cli.Service;
using ZonLb.Engine.Configuration;
using ZonLb.Engine.Control;
using ZonLb.Engine.Counters;
using ZonLb.Engine;
using ZonLb.Native.Bpf;
using ZonLb.Native.Interop;

namespace ZonLb.Cli.Commands;

/// <summary>`run --config FILE`: attaches, forwards in the foreground, prints a status line per second, and
/// detaches on SIGINT or SIGTERM.</summary>
public static class RunCommand
{
    public static Command Create()
    {
        var config = new Option<string>("--config", "-c") { HelpName = "FILE", Description = "The TOML configuration file.", Required = true };
        var interval = new Option<double>("--status-interval")
        {
            Description = "Seconds between status lines; 0 prints none.",
            DefaultValueFactory = _ => 1.0,
        };
        var cmd = new Command("run",
            "Attach to the configured interfaces and forward traffic in the foreground until SIGINT or SIGTERM.\n" +
            "Prints one status line per interval (rx/tx packets per second, connections, drops) and, on exit, the\n" +
            "totals; every XDP program it attached is detached before it exits.\n" +
            "Exit codes: 0 stopped by a signal, 1 the data path failed, 2 bad configuration or attach refused.\n" +
            "Example: zonlb-afxdp run --config /etc/zonlb/zonlb.toml") { config, interval };
        cmd.SetAction(r => Execute(r.GetValue(config)!, r.GetValue(interval)));
        return cmd;
    }

    public static int Execute(string path, double statusInterval)
    {
        LoadBalancerConfig cfg;
        try
        {
            cfg = ConfigLoader.LoadFile(path);
        }
        catch (ConfigException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return ExitCodes.ConfigError;
        }

        using var stop = new ManualResetEventSlim();
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Set(); });
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Set(); });

        LoadBalancer dp;
        try
        {
            dp = LoadBalancer.Start(cfg, Log);
        }
        catch (Exception e) when (e is NativeException or InvalidOperationException or FileNotFoundException or DllNotFoundException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            Console.Error.WriteLine("nothing was left attached");
            return ExitCodes.ConfigError;
        }

        // An exception nobody catches ends the process; detach and close first, so nothing stays attached.
        int unhandled = 0;
        AppDomain.CurrentDomain.UnhandledException += (_, e) =>
        {
            // The process ends when the first handler returns: only the first one cleans up and returns; any
            // other thread failing meanwhile waits here for the end.
            if (Interlocked.Exchange(ref unhandled, 1) != 0)
                Thread.Sleep(Timeout.Infinite);
            Console.Error.WriteLine($"error: unhandled exception, detaching before exit: {e.ExceptionObject}");
            dp.Dispose();
            Console.Error.WriteLine($"detached from {string.Join(", ", cfg.Interfaces.Select(i => i.Name))}");
        };
        int exit = ExitCodes.Ok;
        ControlServer control;
        try
        {
            control = new ControlServer(dp, cfg.ControlSocket, Log);
        }
        catch (Exception e) when (e is InvalidOperationException or IOException or System.Net.Sockets.SocketException or UnauthorizedAccessException)
        {
            dp.Dispose();
            Console.Error.WriteLine($"error: control socket {cfg.ControlSocket}: {e.Message}");
            Console.Error.WriteLine("nothing was left attached");
            return ExitCodes.ConfigError;
        }
        using var systemd = new SystemdNotifier();
        control.OnReload = () => Reload(dp, path, systemd);
        MetricsServer? metrics = null;
        if (cfg.MetricsListen != null)
        {
            try
            {
                metrics = new MetricsServer(dp, cfg.MetricsListen);
            }
            catch (System.Net.Sockets.SocketException e)
            {
                control.Dispose();
                dp.Dispose();
                Console.Error.WriteLine($"error: metrics_listen = \"{cfg.MetricsListen}\": {e.Message}");
                Console.Error.WriteLine("nothing was left attached");
                return ExitCodes.ConfigError;
            }
        }
        using var sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, c =>
        {
            c.Cancel = true;
            _ = Task.Run(async () =>
            {
                try
                {
                    await Reload(dp, path, systemd);
                }
                catch (Exception e) when (e is ConfigException or InvalidOperationException or NativeException)
                {
                    Log($"reload failed, nothing changed: {e.Message}");
                }
            });
        });
        dp.Warning += (_, hint) => Log($"warning: {hint}");
        using (dp)
        using (control)
        using (metrics)
        {
            // the start-up's garbage (configuration, netlink answers, JIT metadata) collected now, in one full
            // collection, rather than in the first full collection under traffic, which stopped the workers for
            // 10-14 ms a few seconds after the start (bench/e2e/latency.sh with SHOW_GC=1)
            GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
            Log($"running with {cfg.Services.Count} service(s); control socket {cfg.ControlSocket}; SIGINT or SIGTERM stops, SIGHUP reloads");
            systemd.Ready($"forwarding on {string.Join(", ", cfg.Interfaces.Select(i => i.Name))}: {cfg.Services.Count} service(s)");
            var status = new StatusPrinter(dp);
            var period = TimeSpan.FromSeconds(statusInterval > 0 ? statusInterval : 1);
            // systemd's watchdog, when the unit has WatchdogSec=: WATCHDOG=1 at half its period, only while every
            // worker comes round its loop (a stalled one also fails the data path below, after engine.worker_stall_ms)
            var watchdog = systemd.WatchdogPeriod;
            if (watchdog is TimeSpan w && w / 2 < period)
                period = w / 2;
            long nextStatus = Environment.TickCount64 + (long)TimeSpan.FromSeconds(statusInterval).TotalMilliseconds;
            while (!stop.Wait(period))
            {
                if (dp.Fault != null)
                {
                    Log($"error: the data path failed: {dp.Fault.Message}; stopping");
                    exit = ExitCodes.RuntimeError;
                    break;
                }
                if (watchdog != null && dp.WorkersAlive)
                    systemd.Watchdog();
                if (statusInterval > 0 && Environment.TickCount64 >= nextStatus)
                {
                    Console.WriteLine(status.Line());
                    nextStatus += (long)TimeSpan.FromSeconds(statusInterval).TotalMilliseconds;
                }
            }
            systemd.Stopping();
            var frames = dp.Stop();
            Console.WriteLine(StatusPrinter.Totals(dp));
            Console.WriteLine(frames);
        }
        Log($"stopped; detached from {string.Join(", ", cfg.Interfaces.Select(i => i.Name))}");
        return exit;
    }

    /// <summary>Re-reads the file and applies it, telling systemd (RELOADING=1, then READY=1 whatever the outcome:
    /// a failed reload changes nothing and the instance keeps serving).</summary>
    private static async Task<string> Reload(LoadBalancer dp, string path, SystemdNotifier systemd)
    {
        systemd.Reloading();
        try
        {
            return await dp.ReloadAsync(ConfigLoader.LoadFile(path));
        }
        finally
        {
            systemd.Ready("forwarding; reloaded " + path);
        }
    }

    private static void Log(string message) => Console.WriteLine($"{DateTime.Now:HH:mm:ss} {message}");
}

/// <summary>Formats the per-interval status line and the exit totals.</summary>
internal sealed class StatusPrinter
{
    private readonly LoadBalancer _lb;
    private long _rx, _tx, _drops;
    private DateTime _at = DateTime.UtcNow;

    public StatusPrinter(LoadBalancer lb) => _lb = lb;

    public string Line()
    {
        var c = _lb.ReadCounters();
        var now = DateTime.UtcNow;
        double secs = Math.Max((now - _at).TotalSeconds, 1e-3);
        long rx = c.RxPackets, tx = c.TxPackets, drops = c.TotalDrops;
        string line = $"{now.ToLocalTime():HH:mm:ss} rx {(rx - _rx) / secs:F0} pps, tx {(tx - _tx) / secs:F0} pps, " +
                      $"connections {c.ActiveConnections} (new {c.NewConnections}), drops {drops - _drops} " +
                      $"[{c.FormatDrops()}], frames free {c.FreeFrames}/{c.TotalFrames}";
        _rx = rx;
        _tx = tx;
        _drops = drops;
        _at = now;
        return line;
    }

    public static string Totals(LoadBalancer lb)
    {
        var c = lb.ReadCounters();
        var xdp = lb.ReadXdpCounters();
        return $"totals: rx_packets={c.RxPackets} rx_multi_buffer={c.RxMultiBuffer} tx_packets={c.TxPackets} to_backend={c.ToBackend} to_client={c.ToClient} " +
               $"new_connections={c.NewConnections} active_connections={c.ActiveConnections} " +
               $"early_drops={c.EarlyDrops} nat_ports_reused={c.NatPortsReused} time_wait_resets={c.TimeWaitResets} " +
               $"partial_checksums_repaired={c.PartialChecksumsRepaired} held={c.Held} handed_off={c.HandedOff} " +
               $"icmp_time_exceeded_sent={c.IcmpTimeExceededSent} icmp_too_big_sent={c.IcmpTooBigSent} " +
               $"icmp_errors_translated={c.IcmpErrorsTranslated} icmp_rate_limited={c.IcmpRateLimited} icmp_not_answered={c.IcmpNotAnswered} " +
               $"fragments_forwarded={c.FragmentsForwarded} tx_kicks={c.TxKicks} tx_kick_errors={c.TxKickErrors} " +
               $"xdp_redirected={xdp["redirected"]} xdp_passed={xdp["passed"]} " +
               $"drops: {c.FormatDrops()}";
    }
}
