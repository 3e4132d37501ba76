using ZonLb.Testing;

namespace ZonLb.IntegrationTests;

/// <summary>The three namespaces with IPv6 addresses and both IPv4 and IPv6 services, with their backends.</summary>
public sealed class Ipv6Fixture : IDisposable
{
    public Ipv6Fixture()
    {
        Topology = Topology.Create();
        try
        {
            Topology.WaitForIpv6Ready();
            Servers = new Backends(Topology.Backend, Topology.BackendIp6, 8080, 5353);
            Servers4 = new Backends(Topology.Backend, Topology.BackendIp, 8080, 5353);
            // both families in one configuration: the IPv6 services, plus the IPv4 ones
            string v4 = string.Join("[[service]]", Topology.DefaultConfig().Split("[[service]]").Skip(1));
            LoadBalancer = ZonLbProcess.Start(Topology.Lb, Topology.Ipv6Config("[[service]]" + v4)).WaitUntilRunning();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public Topology Topology { get; }
    public Backends? Servers { get; }
    public Backends? Servers4 { get; }
    public ZonLbProcess? LoadBalancer { get; }

    public void Dispose()
    {
        try
        {
            LoadBalancer?.Stop();
            LoadBalancer?.Dispose();
            Servers?.Dispose();
            Servers4?.Dispose();
        }
        finally
        {
            Topology.Dispose();
        }
    }
}

/// <summary>
/// IPv6 full NAT through real namespaces: client fd00:10::2 -> VIP fd00:10::1 -> [zonlb-afxdp] -> SNAT
/// fd00:20::1 -> backend fd00:20::2. Next hops come from the kernel's IPv6 routes and NDP table; neighbour
/// discovery itself stays with the kernel. Veths keep TX checksum offload on.
/// </summary>
public class Ipv6Tests : IClassFixture<Ipv6Fixture>
{
    private readonly Ipv6Fixture _f;

    public Ipv6Tests(Ipv6Fixture f) => _f = f;

    private Topology T => _f.Topology;

    [Fact]
    public void Ping6_to_the_vip_is_answered_by_the_backend_one_hop_away()
    {
        var r = T.Client.Exec(TimeSpan.FromSeconds(20), "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", Topology.Vip6);
        Assert.True(r.ExitCode == 0, r.Output);
        Assert.Contains("3 received", r.Stdout);
        Assert.Contains("ttl=63", r.Stdout); // hop limit 64 from the backend, minus our hop
    }

    [Fact]
    public void Curl_over_ipv6_through_the_vip_gets_the_backends_answer_from_the_snat_address()
    {
        var r = T.Client.Exec(TimeSpan.FromSeconds(20), "curl", "-sS", "-6", "-m", "10", $"http://[{Topology.Vip6}]/");
        Assert.True(r.ExitCode == 0, r.Output);
        Assert.StartsWith($"hello from backend {Topology.BackendIp6}, you are {Topology.LbBackendSideIp6}:", r.Stdout);
    }

    [Fact]
    public async Task A_large_ipv6_response_arrives_whole()
    {
        long n = await Clients.Download(T.Client, Topology.Vip6, 80, 2_000_000, 20000);
        Assert.True(n > 2_000_000, $"{n} bytes");
    }

    [Fact]
    public async Task Udp_over_ipv6_through_the_vip_gets_the_backends_answer()
    {
        string reply = await Clients.UdpRequest(T.Client, Topology.Vip6, 5353, "hi6");
        Assert.StartsWith($"echo:hi6 from [{Topology.LbBackendSideIp6}]:", reply);
    }

    [Fact]
    public async Task Ipv4_and_ipv6_services_run_side_by_side()
    {
        Assert.StartsWith($"hello from backend {Topology.BackendIp},", await Clients.HttpGet(T.Client, Topology.Vip, 80));
        Assert.StartsWith($"hello from backend {Topology.BackendIp6},", await Clients.HttpGet(T.Client, Topology.Vip6, 80));
    }

    [Fact]
    public void A_packet_whose_hop_limit_runs_out_at_the_load_balancer_gets_time_exceeded_from_it()
    {
        var r = T.Client.Exec(TimeSpan.FromSeconds(20), "ping", "-6", "-c", "1", "-t", "1", "-W", "2", Topology.Vip6);
        Assert.Contains($"From {Topology.Vip6} icmp_seq=1 Time exceeded: Hop limit", r.Stdout);
    }

    [Fact]
    public void Neighbour_discovery_for_the_vip_is_answered_by_the_kernel()
    {
        T.Client.Ip("-6", "neigh", "flush", "dev", "eth0");
        var r = T.Client.Exec(TimeSpan.FromSeconds(20), "ping", "-6", "-c", "1", "-W", "2", Topology.Vip6);
        Assert.True(r.ExitCode == 0, r.Output);
        string lbcMac = Topology.Mac(T.Lb, "lbc").ToString();
        Assert.Contains(string.Join(':', Enumerable.Range(0, 6).Select(i => lbcMac.Substring(i * 2, 2))).ToLowerInvariant(),
            T.Client.Ip("-6", "neigh", "show", Topology.Vip6, "dev", "eth0"));
    }

    [Fact]
    public void The_backend_is_found_in_the_ndp_table_and_shown_by_neighbors_list()
    {
        T.Client.Exec(TimeSpan.FromSeconds(20), "ping", "-6", "-c", "1", "-W", "2", Topology.Vip6);
        var r = _f.LoadBalancer!.Control("neighbors", "list");
        Assert.True(r.ExitCode == 0, r.Output);
        Assert.Contains(Topology.BackendIp6, r.Stdout);
    }
}
