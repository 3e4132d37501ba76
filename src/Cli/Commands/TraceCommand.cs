using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Runtime.InteropServices;
using ZonLb.Engine.Configuration;
using ZonLb.Native.Bpf;
using ZonLb.Native.Interop;
using ZonLb.Native.Netlink;

namespace ZonLb.Cli.Commands;

/// <summary>
/// `trace`: prints every packet the kernel drops (in any namespace) whose source or destination is an address
/// of the configured services: VIPs, SNAT addresses and backends. One line per drop: time, namespace,
/// interface, 5-tuple, drop reason, and the kernel function that dropped it.
/// </summary>
public static class TraceCommand
{
    public static Command Create()
    {
        var config = new Option<string>("--config", "-c") { HelpName = "FILE", Description = "The configuration whose addresses to watch.", Required = true };
        var service = new Option<string?>("--service") { Description = "Watch only this service's addresses." };
        var seconds = new Option<double>("--seconds") { Description = "Stop after this many seconds; 0 runs until SIGINT or SIGTERM.", DefaultValueFactory = _ => 0 };
        var cmd = new Command("trace",
            "Show packets of the configured services that the kernel drops, with the kernel's drop reason (skb:kfree_skb):\n" +
            "the answer to \"where did my SYN go\" in one command. Watches the VIPs, SNAT addresses and backends of the\n" +
            "config in every namespace; detaches on exit. Needs root, BTF and the skb:kfree_skb tracepoint.\n" +
            "Example: zonlb-afxdp trace --config /etc/zonlb/zonlb.toml --service web --seconds 30")
        { config, service, seconds };
        cmd.SetAction(r => Execute(r.GetValue(config)!, r.GetValue(service), r.GetValue(seconds)));
        return cmd;
    }

    /// <summary>Every address of the watched services: VIPs, backends, SNAT (configured or the kernel's source toward the backend).</summary>
    public static List<IPAddress> WatchedAddresses(LoadBalancerConfig cfg, string? service)
    {
        var set = new HashSet<IPAddress>();
        using var nl = new RtNetlink();
        foreach (var s in cfg.Services.Where(s => service == null || s.Name == service))
        {
            set.Add(s.Vip);
            set.UnionWith(s.Snat);
            foreach (var b in s.Backends)
            {
                set.Add(b.Address);
                if (s.Snat.Count == 0 && nl.GetRoute(b.Address, out _) is { } route)
                {
                    if (route.PreferredSource != null)
                        set.Add(route.PreferredSource);
                    else
                        set.UnionWith(b.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6
                            ? nl.GetIPv6Addresses(route.OutIfIndex) : nl.GetIPv4Addresses(route.OutIfIndex));
                }
            }
        }
        return set.ToList();
    }

    private static string WithPort(IPAddress a, ushort port) =>
        a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{a}]:{port}" : $"{a}:{port}";

    public static int Execute(string path, string? service, double seconds)
    {
        LoadBalancerConfig cfg;
        try
        {
            cfg = ConfigLoader.LoadFile(path);
            if (service != null && cfg.Services.All(s => s.Name != service))
                throw new ConfigException($"{path}: no service named '{service}'");
        }
        catch (ConfigException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return ExitCodes.ConfigError;
        }
        if (DropTracer.UnavailableReason() is { } why)
        {
            Console.Error.WriteLine($"error: trace cannot run: {why}");
            return ExitCodes.RuntimeError;
        }
        var watch = WatchedAddresses(cfg, service);
        var reasons = KernelSymbols.DropReasonNames();
        var symbol = KernelSymbols.KallsymsResolver();
        var namespaces = NamespaceNames();
        using var stop = new ManualResetEventSlim();
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Set(); });
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Set(); });
        DropTracer tracer;
        try
        {
            tracer = DropTracer.Start(watch);
        }
        catch (Exception e) when (e is NativeException or InvalidOperationException or FileNotFoundException or DllNotFoundException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return ExitCodes.RuntimeError;
        }
        using (tracer)
        {
            Console.WriteLine($"tracing kernel drops to or from {string.Join(", ", watch)}{(seconds > 0 ? $" for {seconds} s" : "; SIGINT stops")}");
            var end = seconds > 0 ? DateTime.UtcNow.AddSeconds(seconds) : DateTime.MaxValue;
            long drops = 0;
            while (!stop.IsSet && DateTime.UtcNow < end)
            {
                foreach (var e in tracer.Poll(100))
                {
                    drops++;
                    string proto = e.Protocol switch { 6 => "tcp", 17 => "udp", 1 => "icmp", _ => $"proto {e.Protocol}" };
                    string ends = e.Protocol is 6 or 17
                        ? $"{WithPort(e.Source, e.SourcePort)} -> {WithPort(e.Destination, e.DestinationPort)}"
                        : $"{e.Source} -> {e.Destination}";
                    string ns = namespaces.TryGetValue(e.NetnsInode, out var name) ? name : $"netns {e.NetnsInode}";
                    string reason = reasons.TryGetValue(e.Reason, out var rn) ? rn : $"reason {e.Reason}";
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"{DateTime.Now:HH:mm:ss.ffffff} {ns} dev {(e.Interface.Length > 0 ? e.Interface : "?")} {proto} {ends} reason {reason} at {symbol(e.Location)}"));
                }
            }
            Console.WriteLine($"{drops} drop(s) traced; detached");
        }
        return ExitCodes.Ok;
    }

    /// <summary>Network namespace inode -> name ("root" for init's, the `ip netns` names for the others).</summary>
    private static Dictionary<uint, string> NamespaceNames()
    {
        var map = new Dictionary<uint, string>();
        void Add(string file, string name)
        {
            try
            {
                var r = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("stat", new[] { "-L", "-c", "%i", file })
                {
                    RedirectStandardOutput = true,
                    RedirectStandardError = true,
                });
                if (r == null)
                    return;
                string output = r.StandardOutput.ReadToEnd();
                r.WaitForExit();
                if (uint.TryParse(output.Trim(), out uint ino))
                    map.TryAdd(ino, name);
            }
            catch (System.ComponentModel.Win32Exception)
            {
            }
        }
        Add("/proc/1/ns/net", "root");
        if (Directory.Exists("/run/netns"))
            foreach (var f in Directory.GetFiles("/run/netns"))
                Add(f, Path.GetFileName(f));
        return map;
    }
}
