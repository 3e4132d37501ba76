using ZonLb.Testing;

namespace ZonLb.IntegrationTests;

/// <summary>
/// Faults and lifecycle: killed processes, injected errors, interfaces that go away, a backend namespace deleted
/// mid-transfer. Each test builds its own client / load balancer / backend namespaces.
/// </summary>
[Collection("dataplane")]
public class FaultTests
{
    private static readonly TimeSpan Exit = TimeSpan.FromSeconds(30);

    private static bool Eventually(Func<bool> condition, TimeSpan limit)
    {
        var end = DateTime.UtcNow + limit;
        while (DateTime.UtcNow < end)
        {
            if (condition())
                return true;
            Thread.Sleep(100);
        }
        return condition();
    }

    [Fact]
    public async Task After_sigkill_the_next_run_replaces_the_stale_program_and_socket()
    {
        using var t = Topology.Create();
        using var servers = new Backends(t.Backend, Topology.BackendIp, 8080, 5353);
        string config = Topology.DefaultConfig();
        using var first = ZonLbProcess.Start(t.Lb, config).WaitUntilRunning();
        first.Kill();
        Assert.Equal(new[] { "lbc", "lbs" }, Topology.InterfacesWithXdp(t.Lb)); // left behind
        Assert.True(File.Exists(first.SocketPath));

        using var second = ZonLbProcess.Start(t.Lb, File.ReadAllText(first.ConfigPath)).WaitUntilRunning();
        Assert.Contains("replaced a stale zonlb_xdp", second.Output);
        Assert.Contains($"left by pid {first.Pid} which is gone", second.Output); // the PID the program recorded
        Assert.StartsWith("hello from backend", await Clients.HttpGet(t.Client, Topology.Vip, 80));
        Assert.Equal(0, second.Stop());
        Assert.Empty(Topology.InterfacesWithXdp(t.Lb));
    }

    [Fact]
    public void A_stale_program_whose_pid_now_belongs_to_another_process_is_still_replaced()
    {
        using var t = Topology.Create();
        string config = Topology.DefaultConfig();
        using var first = ZonLbProcess.Start(t.Lb, config).WaitUntilRunning();
        first.Kill();
        // the killed run's PID handed to another process: a sleep of the test's own, recorded as the owner with the
        // killed run's start time (as if the PID had been reused)
        using var other = System.Diagnostics.Process.Start("sleep", "60");
        foreach (var ifName in new[] { "lbc", "lbs" })
            RewriteOwnerPid(t.Lb, ifName, other.Id);

        using var second = ZonLbProcess.Start(t.Lb, File.ReadAllText(first.ConfigPath)).WaitUntilRunning();
        Assert.Contains($"replaced a stale zonlb_xdp", second.Output);
        Assert.Contains($"left by pid {other.Id} which is gone", second.Output);
        Assert.Equal(0, second.Stop());
        other.Kill();
    }

    /// <summary>Overwrites the PID in the owner map of the zonlb_xdp attached to ifName, keeping its start time.</summary>
    private static void RewriteOwnerPid(NetworkNamespace ns, string ifName, int pid)
    {
        string link = ns.Ip("-d", "-j", "link", "show", ifName);
        var progId = System.Text.Json.JsonDocument.Parse(link).RootElement[0].GetProperty("xdp").GetProperty("prog").GetProperty("id").GetInt32();
        var prog = System.Text.Json.JsonDocument.Parse(Command.Check("bpftool", "-j", "prog", "show", "id", progId.ToString())).RootElement;
        foreach (var mapId in prog.GetProperty("map_ids").EnumerateArray())
        {
            var map = System.Text.Json.JsonDocument.Parse(Command.Check("bpftool", "-j", "map", "show", "id", mapId.ToString())).RootElement;
            if (map.GetProperty("name").GetString() != "owner")
                continue;
            var value = System.Text.Json.JsonDocument.Parse(Command.Check("bpftool", "-j", "map", "lookup", "id", mapId.ToString(), "key", "0", "0", "0", "0"))
                .RootElement.GetProperty("value").EnumerateArray().Select(v => Convert.ToByte(v.GetString(), 16)).ToArray();
            BitConverter.GetBytes((uint)pid).CopyTo(value, 0);
            var args = new List<string> { "map", "update", "id", mapId.ToString(), "key", "0", "0", "0", "0", "value" };
            args.AddRange(value.Select(b => b.ToString()));
            var r = Command.Run("bpftool", args);
            Assert.True(r.ExitCode == 0, r.Output);
            return;
        }
        Assert.Fail($"no owner map behind {ifName}'s program {progId}");
    }

    [Theory]
    [InlineData("worker", 1)]
    [InlineData("unhandled", -1)]
    public void An_error_in_the_data_path_detaches_before_the_process_ends(string fault, int expectedExit)
    {
        using var t = Topology.Create();
        using var lb = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig(), injectFault: fault).WaitUntilRunning();
        t.Client.Exec(TimeSpan.FromSeconds(10), "ping", "-c", "1", "-W", "1", Topology.Vip);

        int? code = lb.WaitForExit(Exit);
        Assert.NotNull(code);
        if (expectedExit >= 0)
            Assert.Equal(expectedExit, code);
        else
            Assert.NotEqual(0, code);
        Assert.Contains("injected", lb.Output);
        Assert.Contains("detached from lbc, lbs", lb.Output);
        Assert.Empty(Topology.InterfacesWithXdp(t.Lb));
    }

    [Fact]
    public void A_hung_worker_is_seen_within_its_stall_limit_its_queues_unsteered_and_run_exits_1_detached()
    {
        using var t = Topology.Create();
        using var lb = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig(), injectFault: "hang").WaitUntilRunning();
        var hungAt = DateTime.UtcNow;
        t.Client.Exec(TimeSpan.FromSeconds(10), "ping", "-c", "1", "-W", "1", Topology.Vip); // worker 0 stops on it

        Assert.True(lb.WaitForLine("worker 0 has not come round its loop", TimeSpan.FromSeconds(15)), lb.Output);
        var seenAfter = DateTime.UtcNow - hungAt;
        int? code = lb.WaitForExit(Exit);

        Assert.True(seenAfter >= TimeSpan.FromSeconds(5) && seenAfter < TimeSpan.FromSeconds(10), $"seen after {seenAfter}"); // engine.worker_stall_ms = 5000
        Assert.Contains("its 2 queue(s) are no longer steered", lb.Output); // one socket on each interface
        Assert.Equal(1, code);
        Assert.Contains("detached from lbc, lbs", lb.Output);
        Assert.Empty(Topology.InterfacesWithXdp(t.Lb));
    }

    [Fact]
    public async Task An_interface_going_down_and_up_is_reported_and_forwarding_resumes()
    {
        using var t = Topology.Create();
        using var servers = new Backends(t.Backend, Topology.BackendIp, 8080, 5353);
        using var lb = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig()).WaitUntilRunning();
        t.Lb.Ip("link", "set", "lbs", "down");
        Assert.True(lb.WaitForLine("interface lbs is down", TimeSpan.FromSeconds(5)), lb.Output);
        t.Lb.Ip("link", "set", "lbs", "up");
        Assert.True(lb.WaitForLine("interface lbs is up again", TimeSpan.FromSeconds(5)), lb.Output);
        Assert.True(Eventually(() => t.Client.Exec(TimeSpan.FromSeconds(10), "curl", "-sS", "-m", "3", $"http://{Topology.Vip}/").ExitCode == 0, TimeSpan.FromSeconds(15)), lb.Output);
        Assert.Equal(0, lb.Stop());
        await Task.CompletedTask;
    }

    [Fact]
    public async Task A_deleted_interface_is_reattached_when_it_returns_while_the_other_keeps_working()
    {
        using var t = Topology.Create();
        using var servers = new Backends(t.Backend, Topology.BackendIp, 8080, 5353);
        using var lb = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig()).WaitUntilRunning();
        Assert.StartsWith("hello from backend", await Clients.HttpGet(t.Client, Topology.Vip, 80));

        t.Lb.Ip("link", "del", "lbs"); // takes the backend's eth0 with it
        Assert.True(lb.WaitForLine("interface lbs was deleted", TimeSpan.FromSeconds(5)), lb.Output);
        // the client side still works: the kernel answers ARP, and lbc keeps its program
        t.Client.Ip("neigh", "flush", "dev", "eth0");
        Assert.Equal(0, t.Client.Exec(TimeSpan.FromSeconds(10), "ping", "-c", "1", "-W", "2", "-I", "eth0", "10.10.0.1").ExitCode >= 0 ? 0 : 1);
        Assert.Contains("lbc", Topology.InterfacesWithXdp(t.Lb));

        t.Lb.Ip("link", "add", "name", "lbs", "type", "veth", "peer", "name", "eth0", "netns", t.Backend.Name);
        t.Lb.Ip("addr", "add", $"{Topology.LbBackendSideIp}/24", "dev", "lbs");
        t.Backend.Ip("addr", "add", $"{Topology.BackendIp}/24", "dev", "eth0");
        t.Lb.Ip("link", "set", "lbs", "up");
        t.Backend.Ip("link", "set", "eth0", "up");
        Assert.True(lb.WaitForLine("re-attached to lbs", TimeSpan.FromSeconds(10)), lb.Output);
        Assert.Equal(new[] { "lbc", "lbs" }, Topology.InterfacesWithXdp(t.Lb));
        Assert.True(Eventually(() => t.Client.Exec(TimeSpan.FromSeconds(10), "curl", "-sS", "-m", "3", $"http://{Topology.Vip}/").ExitCode == 0, TimeSpan.FromSeconds(15)), lb.Output);

        Assert.Equal(0, lb.Stop());
        Assert.Empty(Topology.InterfacesWithXdp(t.Lb));
        Assert.Matches(@"frames_unaccounted=0\b", lb.Output);
    }

    [Fact]
    public async Task A_backend_namespace_deleted_mid_transfer_causes_no_crash()
    {
        var t = Topology.Create();
        try
        {
            var servers = new Backends(t.Backend, Topology.BackendIp, 8080, 5353);
            using var lb = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig()).WaitUntilRunning();
            // 4 x 1 GB: far longer than the moment the namespace disappears
            var transfers = Enumerable.Range(0, 4).Select(_ => Clients.Download(t.Client, Topology.Vip, 80, 1_000_000_000, timeoutMs: 8000)).ToList();
            await Task.Delay(500);
            servers.Dispose();   // the backend's servers stop (their sockets would keep the namespace alive)
            t.Backend.Dispose(); // and the backend namespace, with its end of the veth, vanishes mid-transfer
            foreach (var x in transfers)
            {
                long got;
                try
                {
                    got = await x;
                }
                catch (Exception e) when (e is OperationCanceledException or System.Net.Sockets.SocketException)
                {
                    got = -1;
                }
                Assert.True(got < 1_000_000_000, $"a transfer finished although its backend vanished ({got} bytes)");
            }

            Assert.False(lb.WaitForExit(TimeSpan.FromSeconds(1)).HasValue, "zonlb-afxdp must keep running: " + lb.Output);
            var status = lb.Control("status");
            Assert.True(status.ExitCode == 0, status.Output);
            Assert.Equal(0, lb.Stop());
            Assert.DoesNotContain("Unhandled", lb.Output);
        }
        finally
        {
            t.Dispose();
        }
    }
}
