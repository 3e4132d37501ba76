using System.Net.Sockets;
using System.Text;
using ZonLb.Testing;

namespace ZonLb.IntegrationTests;

/// <summary>
/// The shipped systemd unit (examples/systemd/zonlb-afxdp.service), as far as it can be checked without systemd
/// (these machines run none): its ExecStart speaks sd_notify on a NOTIFY_SOCKET of the test's own, in the order
/// Type=notify expects; and the program forwards as an unprivileged user holding only the unit's capabilities,
/// each of which it needs. Topology: the standard three namespaces (<see cref="Topology"/>).
/// </summary>
public class SystemdUnitTests
{
    private static string UnitValue(string key)
    {
        string unit = File.ReadAllText(Path.Combine(Command.RepoRoot(), "examples", "systemd", "zonlb-afxdp.service"));
        var line = unit.Split('\n').SingleOrDefault(l => l.StartsWith(key + "=", StringComparison.Ordinal));
        Assert.True(line != null, $"the unit has no {key}=");
        return line![(key.Length + 1)..].Trim();
    }

    /// <summary>ExecStart's arguments after `run --config FILE`.</summary>
    private static string[] ExecStartArguments()
    {
        var words = UnitValue("ExecStart").Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(new[] { "run", "--config" }, words[1..3]);
        return words[4..];
    }

    [Fact]
    public async Task The_units_start_command_notifies_ready_reloading_and_stopping_in_that_order()
    {
        Assert.Equal("notify", UnitValue("Type"));
        using var t = Topology.Create();
        using var servers = new Backends(t.Backend, Topology.BackendIp, 8080, 5353);
        string path = Path.Combine(Path.GetTempPath(), $"zlbt-notify-{Guid.NewGuid():N}.sock");
        using var notify = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        notify.Bind(new UnixDomainSocketEndPoint(path));
        try
        {
            using var lb = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig(),
                environment: new Dictionary<string, string> { ["NOTIFY_SOCKET"] = path }, arguments: ExecStartArguments());

            string ready = Receive(notify, TimeSpan.FromSeconds(30), lb);
            string body = await Clients.HttpGet(t.Client, Topology.Vip, 80); // forwarding as soon as READY=1 came
            lb.Signal(ZonLbProcess.SIGHUP);                                  // ExecReload
            string reloading = Receive(notify, TimeSpan.FromSeconds(10), lb);
            string readyAgain = Receive(notify, TimeSpan.FromSeconds(10), lb);
            int exit = lb.Stop();
            string stopping = Receive(notify, TimeSpan.FromSeconds(10), lb);

            Assert.Contains("READY=1", ready.Split('\n'));
            Assert.Contains($"MAINPID=", ready);
            Assert.StartsWith("hello from backend", body);
            Assert.Contains("RELOADING=1", reloading.Split('\n'));
            Assert.Matches(@"(?m)^MONOTONIC_USEC=\d+$", reloading);
            Assert.Contains("READY=1", readyAgain.Split('\n'));
            Assert.Equal("STOPPING=1", stopping);
            Assert.Equal(0, exit);
            Assert.DoesNotContain(" rx ", lb.Output); // --status-interval 0: no status line per second in the journal
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Under_the_units_watchdog_it_sends_watchdog_while_its_workers_run_and_not_once_one_hangs()
    {
        var period = TimeSpan.Parse("00:00:" + UnitValue("WatchdogSec").TrimEnd('s').PadLeft(2, '0')); // "10s"
        using var t = Topology.Create();
        string path = Path.Combine(Path.GetTempPath(), $"zlbt-notify-{Guid.NewGuid():N}.sock");
        using var notify = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        notify.Bind(new UnixDomainSocketEndPoint(path));
        try
        {
            var environment = new Dictionary<string, string>
            {
                ["NOTIFY_SOCKET"] = path, ["WATCHDOG_USEC"] = ((long)period.TotalMicroseconds).ToString(), ["ZONLB_INJECT_FAULT"] = "hang",
            };
            using var lb = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig(), environment: environment, arguments: ExecStartArguments());
            Assert.Contains("READY=1", Receive(notify, TimeSpan.FromSeconds(30), lb).Split('\n'));
            Assert.Equal("WATCHDOG=1", Receive(notify, period, lb)); // within the period: at half of it

            var hung = DateTime.UtcNow;
            t.Client.Exec(TimeSpan.FromSeconds(10), "ping", "-c", "1", "-W", "1", Topology.Vip); // worker 0 hangs on it
            var after = new List<(TimeSpan At, string Message)>();
            while (DateTime.UtcNow - hung < TimeSpan.FromSeconds(20) && !after.Any(m => m.Message == "STOPPING=1"))
                after.Add((DateTime.UtcNow - hung, Receive(notify, TimeSpan.FromSeconds(20), lb)));
            int? exit = lb.WaitForExit(TimeSpan.FromSeconds(30));

            // WATCHDOG=1 goes on while the worker is within its stall limit (engine.worker_stall_ms, 5 s), and stops
            // once it is past it, long before systemd's period would run out
            string seen = string.Join(" | ", after.Select(m => $"{m.At.TotalSeconds:F1}s {m.Message}"));
            Assert.All(after.Where(m => m.Message == "WATCHDOG=1"), m => Assert.True(m.At < TimeSpan.FromSeconds(7), seen));
            Assert.Contains("STOPPING=1", after.Select(m => m.Message));
            Assert.Equal(1, exit);
            Assert.Contains("worker 0 has not come round its loop", lb.Output);
            Assert.Empty(Topology.InterfacesWithXdp(t.Lb));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public async Task The_program_forwards_as_an_unprivileged_user_with_only_the_units_capabilities()
    {
        var caps = UnitValue("AmbientCapabilities").Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(caps.Order(), UnitValue("CapabilityBoundingSet").Split(' ', StringSplitOptions.RemoveEmptyEntries).Order());
        Assert.Equal("yes", UnitValue("DynamicUser"));
        using var t = Topology.Create();
        using var servers = new Backends(t.Backend, Topology.BackendIp, 8080, 5353);
        using var lb = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig(), wrapper: AsNobodyWith(caps)).WaitUntilRunning();

        string body = await Clients.HttpGet(t.Client, Topology.Vip, 80);
        var stats = lb.Control("stats");

        Assert.StartsWith("hello from backend", body);
        Assert.Contains("Uid:\t65534\t65534\t65534\t65534", File.ReadAllText($"/proc/{lb.ProgramPid()}/status"));
        Assert.True(stats.ExitCode == 0, stats.Output); // the control socket works under the unprivileged user
        Assert.Contains("web", stats.Stdout);
        Assert.Equal(0, lb.Stop());
    }

    [Theory]
    [InlineData("CAP_NET_ADMIN")]
    [InlineData("CAP_NET_RAW")]
    [InlineData("CAP_BPF")]
    [InlineData("CAP_PERFMON")]
    [InlineData("CAP_IPC_LOCK")]
    public void Without_one_of_the_units_capabilities_the_start_is_refused_and_nothing_stays_attached(string missing)
    {
        var caps = UnitValue("AmbientCapabilities").Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.Contains(missing, caps);
        using var t = Topology.Create();
        using var lb = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig(), wrapper: AsNobodyWith(caps.Where(c => c != missing).ToArray()));

        int? exit = lb.WaitForExit(TimeSpan.FromSeconds(30));

        Assert.True(exit == 2, lb.Output);
        Assert.Contains("nothing was left attached", lb.Output);
        Assert.DoesNotContain("prog/xdp", t.Lb.Ip("link", "show", "lbc"));
        Assert.DoesNotContain("prog/xdp", t.Lb.Ip("link", "show", "lbs"));
    }

    /// <summary>setpriv: user and group nobody, no supplementary groups, exactly these capabilities (ambient, so
    /// that they survive the exec of dotnet), as DynamicUser= and AmbientCapabilities= give them.</summary>
    private static string[] AsNobodyWith(string[] caps)
    {
        string set = "-all," + string.Join(',', caps.Select(c => "+" + c["CAP_".Length..].ToLowerInvariant()));
        return new[] { "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", $"--inh-caps={set}", $"--ambient-caps={set}",
            $"--bounding-set={set}", "env", "HOME=/tmp", "DOTNET_CLI_HOME=/tmp" };
    }

    private static string Receive(Socket socket, TimeSpan timeout, ZonLbProcess lb)
    {
        var buffer = new byte[4096];
        socket.ReceiveTimeout = (int)timeout.TotalMilliseconds;
        try
        {
            int n = socket.Receive(buffer);
            return Encoding.UTF8.GetString(buffer, 0, n);
        }
        catch (SocketException e)
        {
            throw new InvalidOperationException($"no sd_notify message within {timeout.TotalSeconds} s ({e.SocketErrorCode}):\n{lb.Output}");
        }
    }
}
