using ZonLb.Testing;

namespace ZonLb.IntegrationTests;

/// <summary>
/// Datagrams larger than the MTU cross the load balancer as IP fragments, both ways: later fragments carry no
/// ports, are steered by address and follow their first fragment's connection (IPv4 and IPv6).
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
}
