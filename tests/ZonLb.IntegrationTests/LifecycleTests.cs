using System.Text.RegularExpressions;
using ZonLb.Testing;

namespace ZonLb.IntegrationTests;

/// <summary>Start, stop and refusal of `zonlb-afxdp run`, each on a topology of its own.</summary>
[Collection("dataplane")]
public class LifecycleTests
{
    private static readonly TimeSpan Exit = TimeSpan.FromSeconds(30);

    [Fact]
    public void Sigterm_stops_run_with_exit_0_and_leaves_no_xdp_program()
    {
        using var t = Topology.Create();
        using var lb = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig()).WaitUntilRunning();
        Assert.Equal(new[] { "lbc", "lbs" }, Topology.InterfacesWithXdp(t.Lb));

        Assert.Equal(0, lb.Stop());

        Assert.Empty(Topology.InterfacesWithXdp(t.Lb));
        Assert.Contains("totals:", lb.Output);
        Assert.Contains("detached from lbc, lbs", lb.Output);
    }

    [Fact]
    public void Sigint_stops_run_with_exit_0_and_leaves_no_xdp_program()
    {
        using var t = Topology.Create();
        using var lb = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig(), defaultSigint: true).WaitUntilRunning();
        Assert.Equal(new[] { "lbc", "lbs" }, Topology.InterfacesWithXdp(t.Lb));

        Assert.Equal(0, lb.Stop(ZonLbProcess.SIGINT));

        Assert.Empty(Topology.InterfacesWithXdp(t.Lb));
        Assert.Contains("detached from lbc, lbs", lb.Output);
    }

    [Fact]
    public async Task Every_umem_frame_is_accounted_for_after_traffic()
    {
        using var t = Topology.Create();
        using var servers = new Backends(t.Backend, Topology.BackendIp, 8080, 5353);
        using var lb = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig()).WaitUntilRunning();
        await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => Clients.HttpGet(t.Client, Topology.Vip, 80, "/bytes/200000")));
        await Clients.UdpRequest(t.Client, Topology.Vip, 5353, "x");
        Assert.Equal(0, lb.Stop());

        var m = Regex.Match(lb.Output, @"frames_total=(\d+) frames_free=(\d+) frames_fill=(\d+) .* frames_unaccounted=(-?\d+)");
        Assert.True(m.Success, lb.Output);
        Assert.Equal("0", m.Groups[4].Value);
        Assert.Equal(16384, int.Parse(m.Groups[1].Value));
        // Idle: every frame is either in the pool or lent to a fill ring.
        Assert.Equal(16384, int.Parse(m.Groups[2].Value) + int.Parse(m.Groups[3].Value));
        Assert.Matches(@"rx_packets=[1-9]\d{2,}", lb.Output);
    }

    [Fact]
    public void Tcp_works_on_default_veths_because_partial_checksums_are_completed()
    {
        using var t = Topology.Create();
        using var servers = new Backends(t.Backend, Topology.BackendIp, 8080, 5353);
        using var lb = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig()).WaitUntilRunning();

        var r = t.Client.Exec(TimeSpan.FromSeconds(20), "curl", "-sS", "-m", "10", $"http://{Topology.Vip}/");
        Assert.True(r.ExitCode == 0, r.Output);
        Assert.Equal(0, lb.Stop());

        var totals = Regex.Match(lb.Output, @"partial_checksums_repaired=(\d+)");
        Assert.True(totals.Success, lb.Output);
        // SYN, ACK, request from the client and SYN-ACK, response, FIN from the backend all arrive partial.
        Assert.True(long.Parse(totals.Groups[1].Value) >= 4, lb.Output);
    }

    [Fact]
    public void A_missing_interface_is_refused_with_exit_2_naming_it_and_nothing_is_attached()
    {
        using var t = Topology.Create();
        string config = Topology.DefaultConfig().Replace("name = \"lbs\"", "name = \"nosuch0\"");
        using var lb = ZonLbProcess.Start(t.Lb, config);

        Assert.Equal(2, lb.WaitForExit(Exit));
        Assert.Contains("interface nosuch0", lb.Output);
        Assert.Contains("does not exist", lb.Output);
        Assert.Empty(Topology.InterfacesWithXdp(t.Lb));
    }

    [Fact]
    public void An_mtu_too_large_for_xdp_on_veth_is_refused_naming_the_mtu_and_nothing_is_attached()
    {
        using var t = Topology.Create();
        t.Client.Ip("link", "set", "eth0", "mtu", "9000");
        t.Lb.Ip("link", "set", "lbc", "mtu", "9000");
        using var lb = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig());

        Assert.Equal(2, lb.WaitForExit(Exit));
        Assert.Contains("attach XDP program to lbc in native mode — the MTU of lbc or of its veth peer is too large for XDP", lb.Output);
        Assert.Contains("Numerical result out of range", lb.Output);
        Assert.Empty(Topology.InterfacesWithXdp(t.Lb));
    }

    [Fact]
    public async Task A_second_instance_is_refused_and_the_first_keeps_forwarding()
    {
        using var t = Topology.Create();
        using var servers = new Backends(t.Backend, Topology.BackendIp, 8080, 5353);
        using var first = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig()).WaitUntilRunning();

        using var second = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig());
        Assert.Equal(2, second.WaitForExit(Exit));
        Assert.Contains("interface lbc already has an XDP program attached", second.Output);
        Assert.Contains("nothing was left attached", second.Output);

        Assert.StartsWith("hello from backend", await Clients.HttpGet(t.Client, Topology.Vip, 80));
        Assert.Equal(0, first.Stop());
        Assert.Empty(Topology.InterfacesWithXdp(t.Lb));
    }

    [Fact]
    public void Sockets_are_bound_on_every_queue_of_a_multi_queue_veth()
    {
        using var t = Topology.Create(queues: 2);
        using var servers = new Backends(t.Backend, Topology.BackendIp, 8080, 5353);
        using var lb = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig()).WaitUntilRunning();
        Assert.Contains("attached to lbc (ifindex", lb.Output);
        Assert.Contains("2 queue(s)", lb.Output);

        // Flows from the client spread over both RX queues of lbc; every one must be answered.
        var r = t.Client.Exec(TimeSpan.FromSeconds(60), "sh", "-c",
            $"for i in $(seq 1 30); do curl -sS -m 5 http://{Topology.Vip}/ >/dev/null || exit 1; done");
        Assert.True(r.ExitCode == 0, r.Output + lb.Output);
        Assert.Equal(0, lb.Stop());
    }
}

/// <summary>`zonlb-afxdp check`, run as a program.</summary>
public class CheckCommandTests
{
    private static CommandResult Check(string toml, NetworkNamespace? ns = null)
    {
        string path = Path.Combine(Path.GetTempPath(), $"zonlb-check-{Guid.NewGuid():N}.toml");
        File.WriteAllText(path, toml);
        try
        {
            var args = new[] { "dotnet", ZonLbProcess.CliPath, "check", "--config", path };
            return ns == null
                ? Command.Run(args[0], args.Skip(1), TimeSpan.FromSeconds(60))
                : ns.Exec(TimeSpan.FromSeconds(60), args);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_bad_config_exits_2_with_one_line_naming_the_key_and_value()
    {
        var r = Check(Topology.DefaultConfig().Replace("port = 8080", "port = 0"));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("service[0].backend[0].port = 0: port out of range 1-65535", r.Stderr);
        Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public void A_valid_config_for_this_host_exits_0()
    {
        using var t = Topology.Create();
        var r = Check(Topology.DefaultConfig(), t.Lb);
        Assert.True(r.ExitCode == 0, r.Output);
        Assert.Contains("ok (2 interface(s), 3 service(s), 3 backend(s))", r.Stdout);
    }

    [Fact]
    public void Config_import_prints_a_zon_lb_file_in_our_format_which_check_accepts()
    {
        string zon = Path.Combine(Path.GetTempPath(), $"zonlb-import-{Guid.NewGuid():N}.toml");
        File.WriteAllText(zon, "[netif.lbc.1]\nip = \"10.10.0.1\"\nproto = 6\nport = 80\n\n[backend.1_0]\nip = \"10.20.0.2\"\nproto = 6\nport = 8080\noptions = [\"redirect\", \"src_ip=10.20.0.1\"]\n");
        try
        {
            var r = Command.Run("dotnet", new[] { ZonLbProcess.CliPath, "config", "import", zon }, TimeSpan.FromSeconds(60));
            Assert.True(r.ExitCode == 0, r.Output);
            Assert.Contains("name = \"lbc_1\"", r.Stdout);
            Assert.Contains("snat = \"10.20.0.1\"", r.Stdout);
            using var t = Topology.Create();
            var check = Check(r.Stdout, t.Lb);
            Assert.True(check.ExitCode == 0, check.Output);
        }
        finally
        {
            File.Delete(zon);
        }
    }

    [Fact]
    public void A_config_naming_an_interface_this_host_lacks_exits_2()
    {
        using var t = Topology.Create();
        var r = Check(Topology.DefaultConfig().Replace("name = \"lbs\"", "name = \"nosuch0\""), t.Lb);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("interface.name = \"nosuch0\"", r.Stderr);
    }
}
