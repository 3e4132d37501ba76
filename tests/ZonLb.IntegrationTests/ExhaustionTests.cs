using System.Text.Json.Nodes;
using ZonLb.Testing;

namespace ZonLb.IntegrationTests;

/// <summary>
/// Resources running out, driven with small configured sizes: each condition is counted, logged once per
/// interval with what to do, established connections keep working, and the engine recovers afterwards.
/// client ns -- [lbc | zonlb-afxdp | lbs] -- backend ns.
/// </summary>
[Collection("dataplane")]
public class ExhaustionTests
{
    private const string ShortTimeouts = """

        [engine]
        tcp_time_wait_timeout = 1
        tcp_close_timeout = 1
        tcp_fin_wait_timeout = 1
        tcp_close_wait_timeout = 1
        tcp_last_ack_timeout = 1
        tcp_syn_sent_timeout = 1
        """;

    private static long Drops(ZonLbProcess lb, string reason) =>
        JsonNode.Parse(lb.Control("stats", "--json").Stdout)!["drops"]![reason]?.GetValue<long>() ?? 0;

    private static async Task<bool> Eventually(Func<Task<bool>> condition, TimeSpan limit)
    {
        var end = DateTime.UtcNow + limit;
        while (DateTime.UtcNow < end)
        {
            try
            {
                if (await condition())
                    return true;
            }
            catch (Exception e) when (e is OperationCanceledException or System.Net.Sockets.SocketException or InvalidOperationException)
            {
            }
            await Task.Delay(200);
        }
        return false;
    }

    [Fact]
    public async Task Nat_port_exhaustion_is_counted_logged_and_recovers()
    {
        using var t = Topology.Create();
        using var servers = new Backends(t.Backend, Topology.BackendIp, 8080, 5353);
        using var lb = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig(ShortTimeouts + "\nnat_port_min = 61000\nnat_port_max = 61001\n")).WaitUntilRunning();
        var a = await EchoConnection.Open(t.Client, Topology.Vip, 80);
        var b = await EchoConnection.Open(t.Client, Topology.Vip, 80);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Clients.HttpGet(t.Client, Topology.Vip, 80, timeoutMs: 1500));
        Assert.True(Drops(lb, "nat_ports_exhausted") >= 1);
        Assert.True(lb.WaitForLine("dropped as nat_ports_exhausted in the last interval", TimeSpan.FromSeconds(3)), lb.Output);
        Assert.Equal("still", await a.RoundTrip("still"));

        a.Dispose();
        b.Dispose();
        Assert.True(await Eventually(async () => (await Clients.HttpGet(t.Client, Topology.Vip, 80, timeoutMs: 1000)).StartsWith("hello", StringComparison.Ordinal), TimeSpan.FromSeconds(15)), lb.Output);
    }

    [Fact]
    public async Task A_full_connection_table_is_logged_and_recovers_when_flows_end()
    {
        using var t = Topology.Create();
        using var servers = new Backends(t.Backend, Topology.BackendIp, 8080, 5353);
        using var lb = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig(ShortTimeouts + "\nconnection_capacity = 2\n")).WaitUntilRunning();
        var a = await EchoConnection.Open(t.Client, Topology.Vip, 80);
        var b = await EchoConnection.Open(t.Client, Topology.Vip, 80);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Clients.HttpGet(t.Client, Topology.Vip, 80, timeoutMs: 1500));
        Assert.True(lb.WaitForLine("dropped as connection_table_full in the last interval", TimeSpan.FromSeconds(3)), lb.Output);
        Assert.Equal("kept", await b.RoundTrip("kept"));
        a.Dispose();
        b.Dispose();
        Assert.True(await Eventually(async () => (await Clients.HttpGet(t.Client, Topology.Vip, 80, timeoutMs: 1000)).StartsWith("hello", StringComparison.Ordinal), TimeSpan.FromSeconds(15)), lb.Output);
    }

    [Fact]
    public async Task A_neighbour_that_never_answers_is_counted_and_the_backend_is_used_once_it_appears()
    {
        using var t = Topology.Create();
        using var servers = new Backends(t.Backend, Topology.BackendIp, 8080, 5353);
        string config = Topology.DefaultConfig().Replace($"address = \"{Topology.BackendIp}\"\nport = 8080", "address = \"10.20.0.9\"\nport = 8080");
        using var lb = ZonLbProcess.Start(t.Lb, config + "\n[engine]\nneighbor_wait_ms = 300\n").WaitUntilRunning();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Clients.HttpGet(t.Client, Topology.Vip, 80, timeoutMs: 2000));
        Assert.True(Drops(lb, "neighbor_unresolved") >= 1);
        Assert.True(lb.WaitForLine("dropped as neighbor_unresolved in the last interval", TimeSpan.FromSeconds(3)), lb.Output);
        // other services keep working meanwhile
        Assert.StartsWith("echo:ok", await Clients.UdpRequest(t.Client, Topology.Vip, 5353, "ok"));

        t.Backend.Ip("addr", "add", "10.20.0.9/24", "dev", "eth0");
        using var late = new Backends(t.Backend, "10.20.0.9", 8080, 5354);
        Assert.True(await Eventually(async () => (await Clients.HttpGet(t.Client, Topology.Vip, 80, timeoutMs: 1500)).Contains("10.20.0.9", StringComparison.Ordinal), TimeSpan.FromSeconds(20)), lb.Output);
    }

    [Fact]
    public async Task A_starved_frame_pool_and_full_tx_rings_are_logged_and_traffic_recovers()
    {
        using var t = Topology.Create();
        using var lb = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig("\n[engine]\nframe_count = 256\nring_size = 64\n")).WaitUntilRunning();
        var server = Task.Run(() => t.Backend.Exec(TimeSpan.FromSeconds(30), "iperf3", "-s", "-1", "-B", Topology.BackendIp, "-p", "8080"));
        await Task.Delay(500);
        var load = t.Client.Exec(TimeSpan.FromSeconds(30), "iperf3", "-c", Topology.Vip, "-p", "80", "-t", "3", "-P", "8");
        Assert.True(load.ExitCode == 0, load.Output);
        await server;
        Assert.True(lb.WaitForLine("warning: ", TimeSpan.FromSeconds(3)), lb.Output); // some pressure was reported
        var stats = JsonNode.Parse(lb.Control("stats", "--json").Stdout)!;
        ulong fillEmpty = stats["sockets"]!.AsArray().Aggregate(0UL, (n, k) => n + k!["rx_fill_ring_empty_descs"]!.GetValue<ulong>() + k["rx_ring_full"]!.GetValue<ulong>());
        long txFull = stats["drops"]!["tx_ring_full"]?.GetValue<long>() ?? 0;
        Assert.True(fillEmpty + (ulong)txFull > 0, lb.Output);

        using var servers = new Backends(t.Backend, Topology.BackendIp, 8080, 5353);
        Assert.True(await Eventually(async () => (await Clients.HttpGet(t.Client, Topology.Vip, 80, "/bytes/200000", timeoutMs: 5000)).Length > 200_000, TimeSpan.FromSeconds(15)), lb.Output);
        Assert.Equal(0, lb.Stop());
        Assert.Matches(@"frames_unaccounted=0\b", lb.Output);
    }
}
