using System.Net.Sockets;
using ZonLb.Testing;

namespace ZonLb.IntegrationTests;

/// <summary>
/// Real traffic through the VIP: client ns --veth--> [lbc | zonlb-afxdp | lbs] --veth--> backend ns.
/// Veths keep their default settings (TX checksum offload on).
/// </summary>
[Collection("dataplane")]
public class DataPathTests
{
    private readonly DataPathFixture _f;

    public DataPathTests(DataPathFixture f) => _f = f;

    private Topology T => _f.Topology;

    [Fact]
    public void The_namespaces_keep_tx_checksum_offload_on()
    {
        foreach (var (ns, dev) in new[] { (T.Client, "eth0"), (T.Backend, "eth0"), (T.Lb, "lbc"), (T.Lb, "lbs") })
        {
            var r = ns.Exec(TimeSpan.FromSeconds(10), "ethtool", "-k", dev);
            Assert.Contains("tx-checksumming: on", r.Stdout);
        }
    }

    [Fact]
    public void Ping_to_the_vip_is_answered_by_the_backend()
    {
        var r = T.Client.Exec(TimeSpan.FromSeconds(20), "ping", "-c", "3", "-i", "0.2", "-W", "2", Topology.Vip);
        Assert.True(r.ExitCode == 0, r.Output);
        Assert.Contains("3 received", r.Stdout);
        // The backend answers with TTL 64 and the load balancer forwards (64 - 1); the LB's own kernel would say 64.
        Assert.Contains("ttl=63", r.Stdout);
    }

    [Fact]
    public void A_packet_whose_ttl_runs_out_at_the_load_balancer_gets_time_exceeded_from_it()
    {
        var r = T.Client.Exec(TimeSpan.FromSeconds(20), "ping", "-c", "1", "-t", "1", "-W", "2", Topology.Vip);
        Assert.Contains($"From {Topology.Vip} icmp_seq=1 Time to live exceeded", r.Stdout);
    }

    [Fact]
    public void Curl_through_the_vip_gets_the_backends_answer()
    {
        var r = T.Client.Exec(TimeSpan.FromSeconds(20), "curl", "-sS", "-m", "10", $"http://{Topology.Vip}/");
        Assert.True(r.ExitCode == 0, r.Output);
        Assert.StartsWith("hello from backend 10.20.0.2, you are 10.20.0.1:", r.Stdout);
    }

    [Fact]
    public async Task Tcp_connections_in_a_row_all_succeed()
    {
        for (int i = 0; i < 25; i++)
            Assert.StartsWith("hello from backend", await Clients.HttpGet(T.Client, Topology.Vip, 80));
    }

    [Fact]
    public async Task Tcp_connections_at_once_all_succeed()
    {
        var bodies = await Task.WhenAll(Enumerable.Range(0, 40).Select(_ => Clients.HttpGet(T.Client, Topology.Vip, 80)));
        Assert.All(bodies, b => Assert.StartsWith("hello from backend", b));
    }

    [Fact]
    public async Task A_response_of_many_segments_arrives_whole()
    {
        string body = await Clients.HttpGet(T.Client, Topology.Vip, 80, "/bytes/1000000");
        Assert.Equal(1_000_000, body.Count(c => c == 'x'));
    }

    [Fact]
    public async Task Udp_request_through_the_vip_gets_the_backends_answer()
    {
        string reply = await Clients.UdpRequest(T.Client, Topology.Vip, 5353, "hi");
        Assert.StartsWith("echo:hi from 10.20.0.1:", reply);
    }

    [Fact]
    public async Task The_backend_sees_the_load_balancers_address_and_a_nat_port_as_source()
    {
        await Clients.HttpGet(T.Client, Topology.Vip, 80);
        await Clients.UdpRequest(T.Client, Topology.Vip, 5353, "who");
        Assert.NotEmpty(_f.Servers!.TcpPeers);
        Assert.All(_f.Servers.TcpPeers.Concat(_f.Servers.UdpPeers), p =>
        {
            Assert.Equal(Topology.LbBackendSideIp, p.Address.ToString());
            Assert.InRange(p.Port, 61000, 65535);
        });
    }

    [Fact]
    public async Task A_port_of_the_vip_that_is_no_service_reaches_the_kernel()
    {
        using var listener = T.Lb.Run(() =>
        {
            var l = new TcpListener(System.Net.IPAddress.Parse(Topology.Vip), 2222);
            l.Start();
            return l;
        });
        var accept = listener.AcceptTcpClientAsync();
        using var client = T.Client.Run(() => new TcpClient(AddressFamily.InterNetwork));
        await client.ConnectAsync(Topology.Vip, 2222).WaitAsync(TimeSpan.FromSeconds(10));
        using var served = await accept.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(Topology.ClientIp, ((System.Net.IPEndPoint)served.Client.RemoteEndPoint!).Address.ToString());
    }

    [Fact]
    public async Task Arp_for_the_vip_is_answered_by_the_kernel()
    {
        T.Client.Ip("neigh", "flush", "dev", "eth0");
        Assert.StartsWith("hello from backend", await Clients.HttpGet(T.Client, Topology.Vip, 80));
        string neigh = T.Client.Ip("neigh", "show", Topology.Vip, "dev", "eth0");
        string lbcMac = Topology.Mac(T.Lb, "lbc").ToString();
        Assert.Contains(string.Join(':', Enumerable.Range(0, 6).Select(i => lbcMac.Substring(i * 2, 2))).ToLowerInvariant(), neigh);
    }
}
