using System.Net;
using System.Net.Sockets;
using ZonLb.Testing;

namespace ZonLb.IntegrationTests;

/// <summary>
/// Datagrams larger than the MTU cross the load balancer as IP fragments, both ways: later fragments carry no
/// ports; the steering program sends them where it sent their first fragment, and leaves the others to the kernel
/// (IPv4 and IPv6).
/// </summary>
public class FragmentTests : IClassFixture<Ipv6Fixture>
{
    private readonly Ipv6Fixture _f;

    public FragmentTests(Ipv6Fixture f) => _f = f;

    private Topology T => _f.Topology;

    [Fact]
    public void A_3000_byte_ping_to_the_vip_is_answered_whole()
    {
        var r = T.Client.Exec(TimeSpan.FromSeconds(20), "ping", "-c", "3", "-i", "0.2", "-W", "2", "-s", "3000", Topology.Vip);
        Assert.True(r.ExitCode == 0, r.Output);
        Assert.Contains("3 received", r.Stdout);
        Assert.Contains("3008 bytes from", r.Stdout);
        Assert.Contains("ttl=63", r.Stdout); // the backend's answer through the engine, not the load balancer's kernel
    }

    [Fact]
    public void A_3000_byte_ping6_to_the_vip_is_answered_whole()
    {
        var r = T.Client.Exec(TimeSpan.FromSeconds(20), "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", "-s", "3000", Topology.Vip6);
        Assert.True(r.ExitCode == 0, r.Output);
        Assert.Contains("3 received", r.Stdout);
        Assert.Contains("ttl=63", r.Stdout);
    }

    [Fact]
    public async Task A_4000_byte_udp_datagram_over_ipv6_crosses_both_ways()
    {
        string message = new string('u', 4000);
        string reply = await Clients.UdpRequest(T.Client, Topology.Vip6, 5353, message);
        Assert.StartsWith($"echo:{message} from [{Topology.LbBackendSideIp6}]:", reply);
    }

    [Fact]
    public async Task A_4000_byte_udp_datagram_over_ipv4_crosses_both_ways()
    {
        string message = new string('v', 4000);
        string reply = await Clients.UdpRequest(T.Client, Topology.Vip, 5353, message);
        Assert.StartsWith($"echo:{message} from {Topology.LbBackendSideIp}:", reply);
    }

    [Theory]
    [InlineData(Topology.LbBackendSideIp, Topology.BackendIp)]
    [InlineData(Topology.LbBackendSideIp6, Topology.BackendIp6)]
    public async Task The_hosts_own_fragmented_udp_to_the_snat_address_reaches_the_kernel(string snat, string from)
    {
        // a socket of the load balancer's own host on its SNAT address (a port outside the NAT range), and a 3,000-byte
        // datagram to it from the backend's namespace: fragmented on the way, its first fragment is none of the
        // engine's, so neither are the later ones
        using var listener = T.Lb.Run(() => new UdpClient(new IPEndPoint(IPAddress.Parse(snat), 7070)));
        using var sender = T.Backend.Run(() => new UdpClient(new IPEndPoint(IPAddress.Parse(from), 0)));
        var payload = new byte[3000];
        new Random(3000).NextBytes(payload);
        using var cts = new CancellationTokenSource(5000);
        var receive = listener.ReceiveAsync(cts.Token);
        await sender.SendAsync(payload, new IPEndPoint(IPAddress.Parse(snat), 7070), cts.Token);
        var got = await receive;
        Assert.Equal(payload, got.Buffer);
    }
}
