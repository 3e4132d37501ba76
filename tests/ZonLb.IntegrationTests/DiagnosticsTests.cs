using System.Text.Json.Nodes;
using ZonLb.Testing;

namespace ZonLb.IntegrationTests;

/// <summary>`zonlb-afxdp trace` and `doctor`, on namespaces made for each test.</summary>
[Collection("dataplane")]
public class DiagnosticsTests
{
    [Fact]
    public async Task Trace_finds_the_seeds_dropped_syn_when_partial_checksum_repair_is_off()
    {
        using var t = Topology.Create();
        using var servers = new Backends(t.Backend, Topology.BackendIp, 8080, 5353);
        string config = Topology.DefaultConfig("\n[engine]\nrepair_partial_checksums = false\n");
        using var lb = ZonLbProcess.Start(t.Lb, config).WaitUntilRunning();

        var trace = Task.Run(() => t.Lb.Exec(TimeSpan.FromSeconds(60), "dotnet", ZonLbProcess.CliPath, "trace", "--config", lb.ConfigPath, "--seconds", "6"));
        await Task.Delay(2500); // the tracer attaches
        var curl = t.Client.Exec(TimeSpan.FromSeconds(20), "curl", "-sS", "-m", "2", $"http://{Topology.Vip}/");
        Assert.NotEqual(0, curl.ExitCode); // the SYN never gets an answer

        var r = await trace;
        Assert.True(r.ExitCode == 0, r.Output);
        Assert.Contains($"{t.Backend.Name} dev eth0 tcp {Topology.LbBackendSideIp}:", r.Stdout);
        Assert.Contains($"-> {Topology.BackendIp}:8080 reason TCP_CSUM at tcp_v4_rcv", r.Stdout);
        Assert.Contains("detached", r.Stdout);
    }

    [Fact]
    public async Task Trace_finds_the_dropped_syn_over_ipv6_too()
    {
        using var t = Topology.Create();
        t.WaitForIpv6Ready();
        using var servers = new Backends(t.Backend, Topology.BackendIp6, 8080, 5353);
        using var lb = ZonLbProcess.Start(t.Lb, Topology.Ipv6Config("\n[engine]\nrepair_partial_checksums = false\n")).WaitUntilRunning();

        var trace = Task.Run(() => t.Lb.Exec(TimeSpan.FromSeconds(60), "dotnet", ZonLbProcess.CliPath, "trace", "--config", lb.ConfigPath, "--seconds", "6"));
        await Task.Delay(2500);
        var curl = t.Client.Exec(TimeSpan.FromSeconds(20), "curl", "-6", "-sS", "-m", "2", $"http://[{Topology.Vip6}]/");
        Assert.NotEqual(0, curl.ExitCode);

        var r = await trace;
        Assert.True(r.ExitCode == 0, r.Output);
        Assert.Contains($"tcp [{Topology.LbBackendSideIp6}]:", r.Stdout);
        Assert.Contains($"-> [{Topology.BackendIp6}]:8080 reason TCP_CSUM at tcp_v6_rcv", r.Stdout);
    }

    [Fact]
    public async Task Trace_sees_nothing_of_ours_dropped_when_the_repair_is_on()
    {
        using var t = Topology.Create();
        using var servers = new Backends(t.Backend, Topology.BackendIp, 8080, 5353);
        using var lb = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig()).WaitUntilRunning();
        var trace = Task.Run(() => t.Lb.Exec(TimeSpan.FromSeconds(60), "dotnet", ZonLbProcess.CliPath, "trace", "--config", lb.ConfigPath, "--service", "web", "--seconds", "5"));
        await Task.Delay(2500);
        for (int i = 0; i < 5; i++)
            Assert.StartsWith("hello from backend", await Clients.HttpGet(t.Client, Topology.Vip, 80));
        var r = await trace;
        Assert.True(r.ExitCode == 0, r.Output);
        Assert.DoesNotContain("TCP_CSUM", r.Stdout);
        Assert.Contains("tracing kernel drops to or from", r.Stdout);
    }

    private static CommandResult Doctor(Topology t, string config, bool json = false)
    {
        string path = Path.Combine(Path.GetTempPath(), $"zonlb-doctor-{Guid.NewGuid():N}.toml");
        File.WriteAllText(path, config);
        try
        {
            var args = new List<string> { "dotnet", ZonLbProcess.CliPath, "doctor", "--config", path };
            if (json)
                args.Add("--json");
            return t.Lb.Exec(TimeSpan.FromSeconds(60), args.ToArray());
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static string Line(CommandResult r, string check) =>
        r.Stdout.Split('\n').FirstOrDefault(l => l.Contains($" {check}:", StringComparison.Ordinal)) ?? $"(no line for {check} in:\n{r.Stdout})";

    /// <summary>A topology whose backend next hop is already resolved, so that doctor finds nothing to say.</summary>
    private static Topology Healthy()
    {
        var t = Topology.Create();
        t.Lb.Exec(TimeSpan.FromSeconds(10), "ping", "-c", "1", "-W", "2", Topology.BackendIp);
        return t;
    }

    private static string Config(string extra = "") =>
        $"control_socket = \"/tmp/zonlb-doctor-{Guid.NewGuid():N}.sock\"\n" + Topology.DefaultConfig(extra);

    [Fact]
    public void Doctor_exits_0_on_a_healthy_setup()
    {
        using var t = Healthy();
        var r = Doctor(t, Config());
        Assert.True(r.ExitCode == 0, r.Output);
        Assert.Contains("0 error(s), 0 warning(s)", r.Stdout);
        Assert.StartsWith("ok", Line(r, "checksum lbc"));
    }

    [Fact]
    public void Doctor_reports_a_missing_interface_as_an_error()
    {
        using var t = Healthy();
        var r = Doctor(t, Config().Replace("name = \"lbs\"", "name = \"nosuch0\""));
        Assert.Equal(2, r.ExitCode);
        Assert.StartsWith("error", Line(r, "interface nosuch0"));
    }

    [Fact]
    public void Doctor_warns_about_an_interface_that_is_down()
    {
        using var t = Healthy();
        t.Lb.Ip("link", "set", "lbc", "down");
        var r = Doctor(t, Config());
        Assert.Equal(1, r.ExitCode);
        Assert.StartsWith("warning", Line(r, "interface lbc"));
    }

    [Fact]
    public void Doctor_reports_fewer_queues_than_workers()
    {
        using var t = Healthy();
        var r = Doctor(t, Config("\n[engine]\nworkers = 2\n"));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("1 RX queue(s) for 2 worker(s)", Line(r, "queues lbc"));
    }

    [Fact]
    public void Doctor_reports_a_stale_xdp_program_of_ours()
    {
        using var t = Healthy();
        t.Lb.Ip("link", "set", "dev", "lbc", "xdpgeneric", "obj", Path.Combine(AppContext.BaseDirectory, "bpf", "zonlb_xdp.o"), "sec", "xdp");
        var r = Doctor(t, Config());
        Assert.Equal(1, r.ExitCode);
        Assert.StartsWith("warning", Line(r, "xdp lbc"));
        Assert.Contains("a stale zonlb_xdp", Line(r, "xdp lbc"));
        Assert.Contains("the next 'zonlb-afxdp run' replaces it", Line(r, "xdp lbc"));
    }

    [Fact]
    public void Doctor_sees_a_running_instance_as_healthy()
    {
        using var t = Healthy();
        using var lb = ZonLbProcess.Start(t.Lb, Config()).WaitUntilRunning();
        var r = Doctor(t, File.ReadAllText(lb.ConfigPath));
        Assert.StartsWith("ok", Line(r, "xdp lbc"));
        Assert.Contains("attached by the running zonlb-afxdp", Line(r, "xdp lbc"));
        Assert.Contains("an instance is running", Line(r, "control socket"));
    }

    [Fact]
    public void Doctor_reports_an_mtu_too_large_for_the_umem_frame()
    {
        using var t = Healthy();
        t.Lb.Ip("link", "set", "lbs", "mtu", "3000");
        var r = Doctor(t, Config());
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("Set engine.frame_size = 4096", Line(r, "mtu lbs"));
        Assert.StartsWith("ok", Line(Doctor(t, Config("\n[engine]\nframe_size = 4096\n")), "mtu lbs"));
    }

    [Fact]
    public void Doctor_reports_a_veth_peer_mtu_too_large_for_xdp_naming_the_peer()
    {
        using var t = Healthy();
        t.Client.Ip("link", "set", "eth0", "mtu", "9000"); // lbc's peer; lbc's own MTU does not count
        var r = Doctor(t, Config());
        Assert.Equal(2, r.ExitCode);
        Assert.StartsWith("error", Line(r, "peer-mtu lbc"));
        Assert.Contains($"the peer eth0 (netns {t.Client.Name}) has MTU 9000, above the 3506", Line(r, "peer-mtu lbc"));
        Assert.StartsWith("ok", Line(r, "peer-mtu lbs"));
    }

    [Fact]
    public void Doctor_takes_a_jumbo_veth_peer_mtu_when_multi_buffer_is_on()
    {
        using var t = Healthy();
        t.Client.Ip("link", "set", "eth0", "mtu", "9000");
        t.Lb.Ip("link", "set", "lbc", "mtu", "9000");
        var r = Doctor(t, Config("\n[engine]\nmulti_buffer = true\n"));
        Assert.StartsWith("ok", Line(r, "peer-mtu lbc"));
        Assert.Contains("engine.multi_buffer", Line(r, "peer-mtu lbc"));
        Assert.StartsWith("ok", Line(r, "mtu lbc"));
        Assert.Contains("chains", Line(r, "mtu lbc"));
    }

    [Fact]
    public void Doctor_warns_when_partial_checksum_repair_is_off()
    {
        using var t = Healthy();
        var r = Doctor(t, Config("\n[engine]\nrepair_partial_checksums = false\n"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("TCP_CSUM", Line(r, "checksum lbc"));
        Assert.Contains($"the peer eth0 (netns {t.Client.Name}) sends with TX checksum offload on", Line(r, "checksum lbc"));
    }

    [Fact]
    public void Doctor_sees_that_peers_without_tx_offload_need_no_repair()
    {
        using var t = Healthy();
        t.Client.Exec(TimeSpan.FromSeconds(10), "ethtool", "-K", "eth0", "tx", "off");
        t.Backend.Exec(TimeSpan.FromSeconds(10), "ethtool", "-K", "eth0", "tx", "off");
        var r = Doctor(t, Config("\n[engine]\nrepair_partial_checksums = false\n"));
        Assert.True(r.ExitCode == 0, r.Output);
        Assert.Contains($"the peer eth0 (netns {t.Backend.Name}) sends with TX checksum offload off", Line(r, "checksum lbs"));
    }

    [Fact]
    public void Doctor_warns_about_ip_forwarding_and_strict_rp_filter()
    {
        using var t = Healthy();
        t.Lb.Exec(TimeSpan.FromSeconds(10), "sysctl", "-qw", "net.ipv4.ip_forward=1");
        t.Lb.Exec(TimeSpan.FromSeconds(10), "sysctl", "-qw", "net.ipv4.conf.lbc.rp_filter=1");
        var r = Doctor(t, Config());
        Assert.Equal(1, r.ExitCode);
        Assert.StartsWith("warning", Line(r, "ip_forward"));
        Assert.StartsWith("warning", Line(r, "rp_filter lbc"));
        Assert.StartsWith("ok", Line(r, "rp_filter lbs"));
    }

    [Fact]
    public void Doctor_reports_backends_without_a_route_or_an_arp_entry()
    {
        using var t = Topology.Create(); // nothing has talked to the backend yet
        var r = Doctor(t, Config().Replace($"address = \"{Topology.BackendIp}\"\nport = 8080", "address = \"192.0.2.99\"\nport = 8080"));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("no route to the backend", Line(r, "backend web 192.0.2.99"));
        Assert.Contains("no ARP entry for next hop 10.20.0.2", Line(r, "backend dns 10.20.0.2"));
    }

    [Fact]
    public void Doctor_checks_ipv6_backends_in_the_ndp_table_and_ipv6_forwarding()
    {
        using var t = Topology.Create();
        t.WaitForIpv6Ready();
        t.Lb.Exec(TimeSpan.FromSeconds(10), "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1");
        var r = Doctor(t, Topology.Ipv6Config());
        Assert.Contains($"no NDP entry for next hop {Topology.BackendIp6}", Line(r, $"backend web6 {Topology.BackendIp6}"));
        Assert.StartsWith("warning", Line(r, "ipv6 forwarding"));
        t.Lb.Exec(TimeSpan.FromSeconds(10), "ping", "-6", "-c", "1", "-W", "2", Topology.BackendIp6);
        Assert.Contains("(NDP entry present)", Line(Doctor(t, Topology.Ipv6Config()), $"backend web6 {Topology.BackendIp6}"));
    }

    [Fact]
    public void Doctor_warns_about_a_stale_control_socket_file_and_speaks_json()
    {
        using var t = Healthy();
        string sock = $"/tmp/zonlb-doctor-{Guid.NewGuid():N}.sock";
        File.WriteAllText(sock, "");
        try
        {
            var r = Doctor(t, $"control_socket = \"{sock}\"\n" + Topology.DefaultConfig(), json: true);
            Assert.Equal(1, r.ExitCode);
            var doc = JsonNode.Parse(r.Stdout)!;
            Assert.Equal(1, doc["exit_code"]!.GetValue<int>());
            var check = doc["checks"]!.AsArray().Single(c => c!["name"]!.GetValue<string>() == "control socket")!;
            Assert.Equal("warning", check["status"]!.GetValue<string>());
            Assert.Contains("stale", check["message"]!.GetValue<string>());
        }
        finally
        {
            File.Delete(sock);
        }
    }

    [Fact]
    public async Task A_growing_socket_counter_is_reported_with_its_likely_cause()
    {
        using var t = Topology.Create();
        // 128 frames for two sockets with 64-entry rings: the fill rings hold them all and the pool is empty, so
        // while frames are in flight to TX the client side's fill ring runs dry under an iperf3 load.
        using var lb = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig("\n[engine]\nframe_count = 128\nring_size = 64\n")).WaitUntilRunning();
        var server = Task.Run(() => t.Backend.Exec(TimeSpan.FromSeconds(30), "iperf3", "-s", "-1", "-B", Topology.BackendIp, "-p", "8080"));
        await Task.Delay(500);
        var client = t.Client.Exec(TimeSpan.FromSeconds(30), "iperf3", "-c", Topology.Vip, "-p", "80", "-t", "2", "-P", "4");
        Assert.True(client.ExitCode == 0, client.Output);
        await server;

        Assert.True(lb.WaitForLine("fill ring empty: the engine is not returning frames fast enough", TimeSpan.FromSeconds(3)), lb.Output);
        var stats = JsonNode.Parse(lb.Control("stats", "--json").Stdout)!;
        var lbc = stats["sockets"]!.AsArray().Single(k => k!["interface"]!.GetValue<string>() == "lbc")!;
        Assert.True(lbc["rx_fill_ring_empty_descs"]!.GetValue<ulong>() > 0);
        Assert.Contains(lbc["hints"]!.AsArray(), h => h!.GetValue<string>().StartsWith("rx_fill_ring_empty_descs", StringComparison.Ordinal));
        var veth = stats["interfaces"]!.AsArray().Single(i => i!["interface"]!.GetValue<string>() == "lbc")!;
        Assert.True(veth["xdp_counters"]!["rx_queue_0_xdp_redirect"]!.GetValue<ulong>() > 0);
    }
}
