using Xunit.Abstractions;
using System.Diagnostics;
using System.Text.Json.Nodes;
using ZonLb.Testing;

namespace ZonLb.IntegrationTests;

/// <summary>
/// Health checks from the load balancer's namespace take a failed backend out of new flows and bring it back:
/// client ns -- [lbc | zonlb-afxdp | lbs] -- backend ns with servers on 10.20.0.2 and 10.20.0.3.
/// </summary>
[Collection("dataplane")]
public class HealthCheckTests
{
    private readonly ITestOutputHelper _out;

    public HealthCheckTests(ITestOutputHelper output) => _out = output;

    private static string StateOf(ZonLbProcess lb, string address)
    {
        var r = lb.Control("stats", "--json");
        Assert.True(r.ExitCode == 0, r.Output);
        return JsonNode.Parse(r.Stdout)!["services"]![0]!["backends"]!.AsArray()
            .Single(b => b!["address"]!.GetValue<string>() == address)!["state"]!.GetValue<string>();
    }

    private static TimeSpan WaitForState(ZonLbProcess lb, string address, string state, TimeSpan limit)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < limit)
        {
            if (StateOf(lb, address) == state)
                return sw.Elapsed;
            Thread.Sleep(50);
        }
        throw new TimeoutException($"backend {address} did not become {state} within {limit}:\n{lb.Output}");
    }

    private static async Task<HashSet<string>> BackendsOf(Topology t, int n)
    {
        var seen = new HashSet<string>();
        for (int i = 0; i < n; i++)
            seen.Add((await Clients.HttpGet(t.Client, Topology.Vip, 80)).Split(' ')[3].TrimEnd(','));
        return seen;
    }

    [Fact]
    public async Task A_backend_whose_server_stops_is_taken_out_and_comes_back_when_it_restarts()
    {
        using var t = Topology.Create();
        using var b1 = new Backends(t.Backend, Topology.BackendIp, 8080, 5353);
        var b2 = new Backends(t.Backend, Topology.BackendIp2, 8080, 5353);
        string health = "health = { kind = \"tcp\", interval = 0.2, timeout = 0.2, rise = 2, fall = 2 }";
        using var lb = ZonLbProcess.Start(t.Lb, ControlTests.TwoBackends(health: health)).WaitUntilRunning();
        try
        {
            Assert.Equal(2, (await BackendsOf(t, 24)).Count);

            b2.Dispose(); // the server in the backend namespace stops
            var failover = WaitForState(lb, Topology.BackendIp2, "down", TimeSpan.FromSeconds(5));
            _out.WriteLine($"backend marked down {failover.TotalMilliseconds:F0} ms after its server stopped (interval 0.2 s, fall 2)");
            Assert.Equal(new[] { Topology.BackendIp }, await BackendsOf(t, 20));
            Assert.Contains($"backend {Topology.BackendIp2}:8080 is down: 2 check(s) failed, last: connect:", lb.Output);

            b2 = new Backends(t.Backend, Topology.BackendIp2, 8080, 5353);
            var recovery = WaitForState(lb, Topology.BackendIp2, "up", TimeSpan.FromSeconds(5));
            _out.WriteLine($"backend back up {recovery.TotalMilliseconds:F0} ms after its server restarted (rise 2)");
            Assert.Equal(2, (await BackendsOf(t, 24)).Count);
            Assert.Contains($"backend {Topology.BackendIp2}:8080 is up", lb.Output);
        }
        finally
        {
            b2.Dispose();
            lb.Stop();
        }
    }

    [Fact]
    public async Task An_http_check_fails_on_an_error_status_and_passes_again_on_success()
    {
        using var t = Topology.Create();
        using var b1 = new Backends(t.Backend, Topology.BackendIp, 8080, 5353);
        using var b2 = new Backends(t.Backend, Topology.BackendIp2, 8080, 5353);
        string health = "health = { kind = \"http\", path = \"/health\", interval = 0.2, timeout = 0.2, rise = 1, fall = 1 }";
        using var lb = ZonLbProcess.Start(t.Lb, ControlTests.TwoBackends(health: health)).WaitUntilRunning();
        try
        {
            b1.Healthy = false;
            WaitForState(lb, Topology.BackendIp, "down", TimeSpan.FromSeconds(5));
            Assert.Contains("HTTP status 'HTTP/1.0 503 Service Unavailable'", lb.Output);
            Assert.Equal(new[] { Topology.BackendIp2 }, await BackendsOf(t, 16));
            b1.Healthy = true;
            WaitForState(lb, Topology.BackendIp, "up", TimeSpan.FromSeconds(5));
        }
        finally
        {
            lb.Stop();
        }
    }

    [Fact]
    public async Task With_drain_false_the_connections_of_a_failed_backend_are_dropped()
    {
        using var t = Topology.Create();
        using var b1 = new Backends(t.Backend, Topology.BackendIp, 8080, 5353);
        using var b2 = new Backends(t.Backend, Topology.BackendIp2, 8080, 5353);
        string health = "health = { kind = \"http\", path = \"/health\", interval = 0.2, timeout = 0.2, rise = 1, fall = 1, drain = false }";
        using var lb = ZonLbProcess.Start(t.Lb, ControlTests.TwoBackends(health: health)).WaitUntilRunning();
        try
        {
            using var echo = await EchoConnection.Open(t.Client, Topology.Vip, 80);
            var failing = echo.Backend == Topology.BackendIp ? b1 : b2;
            failing.Healthy = false;
            WaitForState(lb, echo.Backend, "down", TimeSpan.FromSeconds(5));
            Assert.True(lb.WaitForLine("connection(s) to the failed backend dropped (drain = false)", TimeSpan.FromSeconds(5)), lb.Output);
            var conns = JsonNode.Parse(lb.Control("conntrack", "list", "--json").Stdout)!.AsArray();
            Assert.DoesNotContain(conns, c => c!["backend"]!.GetValue<string>() == $"{echo.Backend}:8080");
        }
        finally
        {
            lb.Stop();
        }
    }
}
