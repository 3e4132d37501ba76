using System.Text.Json.Nodes;
using ZonLb.Testing;

namespace ZonLb.IntegrationTests;

/// <summary>
/// Live operation through the control socket, with the real CLI commands:
/// client ns -- [lbc | zonlb-afxdp | lbs] -- backend ns holding two servers, 10.20.0.2 and 10.20.0.3.
/// Each test has its own topology: the commands change the running instance.
/// </summary>
[Collection("dataplane")]
public class ControlTests
{
    internal static string TwoBackends(string extraService = "", string health = "") => $$"""
        [[interface]]
        name = "lbc"
        [[interface]]
        name = "lbs"

        [[service]]
        name = "web"
        vip = "{{Topology.Vip}}"
        protocol = "tcp"
        port = 80
        {{health}}
        [[service.backend]]
        address = "{{Topology.BackendIp}}"
        port = 8080
        [[service.backend]]
        address = "{{Topology.BackendIp2}}"
        port = 8080
        {{extraService}}
        """;

    private sealed class Setup : IDisposable
    {
        public Setup(string config)
        {
            T = Topology.Create();
            B1 = new Backends(T.Backend, Topology.BackendIp, 8080, 5353);
            B2 = new Backends(T.Backend, Topology.BackendIp2, 8080, 5353);
            Lb = ZonLbProcess.Start(T.Lb, config).WaitUntilRunning();
        }

        public Topology T { get; }
        public Backends B1 { get; }
        public Backends B2 { get; }
        public ZonLbProcess Lb { get; }

        public JsonNode Json(params string[] command)
        {
            var r = Lb.Control(command.Concat(new[] { "--json" }).ToArray());
            Assert.True(r.ExitCode == 0, r.Output);
            return JsonNode.Parse(r.Stdout)!;
        }

        /// <summary>Which backends answered n fresh connections.</summary>
        public async Task<HashSet<string>> BackendsOf(int n)
        {
            var seen = new HashSet<string>();
            for (int i = 0; i < n; i++)
            {
                string body = await Clients.HttpGet(T.Client, Topology.Vip, 80);
                seen.Add(body.Split(' ')[3].TrimEnd(','));
            }
            return seen;
        }

        public void Dispose()
        {
            try
            {
                Lb.Stop();
            }
            finally
            {
                Lb.Dispose();
                B1.Dispose();
                B2.Dispose();
                T.Dispose();
            }
        }
    }

    [Fact]
    public async Task Status_and_stats_report_the_running_instance_per_service_and_backend()
    {
        using var s = new Setup(TwoBackends());
        await s.BackendsOf(10);

        var status = s.Json("status");
        Assert.Equal(new[] { "lbc", "lbs" }, status["interfaces"]!.AsArray().Select(i => i!["name"]!.GetValue<string>()));
        Assert.Equal(1, status["services"]!.GetValue<int>());

        var stats = s.Json("stats");
        var web = stats["services"]!.AsArray().Single()!;
        Assert.Equal(10, web["new_connections"]!.GetValue<long>());
        var backends = web["backends"]!.AsArray();
        Assert.Equal(10, backends.Sum(b => b!["new_connections"]!.GetValue<long>()));
        Assert.All(backends, b => Assert.Equal("up", b!["state"]!.GetValue<string>()));
        Assert.True(backends.Sum(b => b!["packets_to_backend"]!.GetValue<long>()) >= 30);
        Assert.True(stats["rx_packets"]!.GetValue<long>() >= 60);

        var text = s.Lb.Control("stats");
        Assert.Contains("service web 10.10.0.1 tcp 80", text.Stdout);
    }

    [Fact]
    public async Task Conntrack_list_shows_connections_and_flush_forgets_them()
    {
        using var s = new Setup(TwoBackends());
        using var echo = await EchoConnection.Open(s.T.Client, Topology.Vip, 80);

        var list = s.Json("conntrack", "list", "--service", "web").AsArray();
        var c = Assert.Single(list)!;
        Assert.StartsWith($"{Topology.ClientIp}:", c["client"]!.GetValue<string>());
        Assert.Equal($"{echo.Backend}:8080", c["backend"]!.GetValue<string>());
        Assert.Equal("ESTABLISHED", c["state"]!.GetValue<string>());

        Assert.Equal(1, s.Json("conntrack", "flush")["flushed"]!.GetValue<int>());
        Assert.Empty(s.Json("conntrack", "list").AsArray());
    }

    [Fact]
    public async Task Neighbors_and_routes_list_the_data_paths_caches()
    {
        using var s = new Setup(TwoBackends());
        await s.BackendsOf(4);
        var routes = s.Json("routes", "list").AsArray();
        Assert.Contains(routes, r => r!["destination"]!.GetValue<string>() == Topology.ClientIp && r["interface"]!.GetValue<string>() == "lbc");
        var neighbors = s.Lb.Control("neighbors", "list");
        Assert.Contains(Topology.ClientIp, neighbors.Stdout);
        Assert.Contains("lladdr", neighbors.Stdout);
    }

    [Fact]
    public async Task A_disabled_backend_gets_no_new_flows_keeps_its_connections_and_comes_back_when_enabled()
    {
        using var s = new Setup(TwoBackends());
        Assert.Equal(2, (await s.BackendsOf(24)).Count);
        using var echo = await EchoConnection.Open(s.T.Client, Topology.Vip, 80);
        string other = echo.Backend == Topology.BackendIp ? Topology.BackendIp2 : Topology.BackendIp;

        var r = s.Lb.Control("backend", "disable", "--service", "web", "--address", echo.Backend, "--port", "8080");
        Assert.True(r.ExitCode == 0, r.Output);

        Assert.Equal(new[] { other }, await s.BackendsOf(16));
        Assert.Equal("still here", await echo.RoundTrip("still here"));

        Assert.Equal(0, s.Lb.Control("backend", "enable", "--service", "web", "--address", echo.Backend).ExitCode);
        Assert.Equal(2, (await s.BackendsOf(24)).Count);
    }

    [Fact]
    public async Task Backend_remove_and_add_change_where_new_flows_go()
    {
        using var s = new Setup(TwoBackends());
        Assert.Equal(0, s.Lb.Control("backend", "remove", "--service", "web", "--address", Topology.BackendIp2).ExitCode);
        Assert.Equal(new[] { Topology.BackendIp }, await s.BackendsOf(16));
        Assert.Equal(0, s.Lb.Control("backend", "add", "--service", "web", "--address", Topology.BackendIp2, "--port", "8080").ExitCode);
        Assert.Equal(2, (await s.BackendsOf(24)).Count);
        var bad = s.Lb.Control("backend", "disable", "--service", "nosuch", "--address", Topology.BackendIp);
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("no service named 'nosuch'", bad.Stderr);
    }

    [Theory]
    [InlineData("command")]
    [InlineData("sighup")]
    public async Task Reload_adds_a_service_without_dropping_an_established_connection(string how)
    {
        using var s = new Setup(TwoBackends());
        using var echo = await EchoConnection.Open(s.T.Client, Topology.Vip, 80);
        var udp = Clients.UdpRequest(s.T.Client, Topology.Vip, 6000, "early", timeoutMs: 500);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => udp);

        File.WriteAllText(s.Lb.ConfigPath, File.ReadAllText(s.Lb.ConfigPath) + $"""

            [[service]]
            name = "echo-udp"
            vip = "{Topology.Vip}"
            protocol = "udp"
            port = 6000
            [[service.backend]]
            address = "{Topology.BackendIp}"
            port = 5353
            """);
        if (how == "sighup")
        {
            s.Lb.Signal(ZonLbProcess.SIGHUP);
            Assert.True(s.Lb.WaitForLine("service echo-udp added", TimeSpan.FromSeconds(10)), s.Lb.Output);
        }
        else
        {
            var r = s.Lb.Control("reload");
            Assert.True(r.ExitCode == 0, r.Output);
            Assert.Contains("service echo-udp added", r.Stdout);
        }

        Assert.StartsWith("echo:late from 10.20.0.1:", await Clients.UdpRequest(s.T.Client, Topology.Vip, 6000, "late"));
        Assert.Equal("after reload", await echo.RoundTrip("after reload"));
        Assert.Empty(Topology.InterfacesWithXdp(s.T.Lb).Except(new[] { "lbc", "lbs" }));
        Assert.Contains("name = \"echo-udp\"", s.Lb.Control("config", "show").Stdout);
    }

    [Fact]
    public void A_reload_with_a_bad_file_changes_nothing_and_says_why()
    {
        using var s = new Setup(TwoBackends());
        File.WriteAllText(s.Lb.ConfigPath, File.ReadAllText(s.Lb.ConfigPath).Replace("port = 8080", "port = 99999"));
        var r = s.Lb.Control("reload");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("port = 99999", r.Stderr);
        Assert.Equal(2, s.Json("stats")["services"]![0]!["backends"]!.AsArray().Count);
    }

    [Fact]
    public async Task The_metrics_endpoint_exposes_the_counters_in_prometheus_text()
    {
        using var s = new Setup("metrics_listen = \"127.0.0.1:9464\"\n" + TwoBackends());
        await s.BackendsOf(5);
        var r = s.T.Lb.Exec(TimeSpan.FromSeconds(20), "curl", "-sS", "-m", "10", "http://127.0.0.1:9464/metrics");
        Assert.True(r.ExitCode == 0, r.Output);
        Assert.Contains("# TYPE zonlb_rx_packets_total counter", r.Stdout);
        Assert.Contains("zonlb_service_new_connections_total{service=\"web\"} 5", r.Stdout);
        Assert.Contains("zonlb_backend_up{service=\"web\",backend=\"10.20.0.2:8080\"} 1", r.Stdout);
        Assert.Matches(@"zonlb_backend_packets_total\{service=""web"",backend=""10\.20\.0\.\d:8080"",direction=""to_backend""\} [1-9]", r.Stdout);
        Assert.Contains("# TYPE zonlb_active_connections gauge", r.Stdout);
    }

    [Fact]
    public async Task A_full_connection_table_refuses_new_flows_and_keeps_established_ones()
    {
        using var s = new Setup(TwoBackends() + "\n[engine]\nconnection_capacity = 3\n");
        var open = new List<EchoConnection>();
        try
        {
            for (int i = 0; i < 3; i++)
                open.Add(await EchoConnection.Open(s.T.Client, Topology.Vip, 80));
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Clients.HttpGet(s.T.Client, Topology.Vip, 80, timeoutMs: 1500));
            foreach (var e in open)
                Assert.Equal("kept", await e.RoundTrip("kept"));
            var stats = s.Json("stats");
            Assert.True(stats["drops"]!["connection_table_full"]!.GetValue<long>() >= 1);
            Assert.Equal(3, stats["active_connections"]!.GetValue<int>());
        }
        finally
        {
            foreach (var e in open)
                e.Dispose();
        }
    }

    [Fact]
    public void A_control_command_without_a_running_instance_says_so()
    {
        var r = Command.Run("dotnet", new[] { ZonLbProcess.CliPath, "status", "--socket", "/tmp/zonlb-no-such.sock" }, TimeSpan.FromSeconds(60));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("cannot reach zonlb-afxdp at /tmp/zonlb-no-such.sock", r.Stderr);
    }
}
