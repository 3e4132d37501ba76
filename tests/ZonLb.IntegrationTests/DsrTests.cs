using ZonLb.Testing;

namespace ZonLb.IntegrationTests;

/// <summary>
/// Direct server return through real namespaces. The backend holds the VIP on its loopback and answers the
/// client directly; here its path back to the client is the load balancer namespace's own kernel routing
/// (ip_forward on, the replies pass the XDP program untouched), not the engine:
/// <code>
///  client [10.10.0.2] -- [lbc | zonlb-afxdp, ip_forward=1 | lbs 10.20.0.1] -- [eth0 10.20.0.2, lo 10.10.0.5 = VIP]
///  VIP 10.10.0.5 is no address of the load balancer; the client has a neighbour entry for it (lbc's MAC)
/// </code>
/// </summary>
public class DsrTests
{
    private const string Vip = "10.10.0.5";

    private const string Config = $$"""
        [[interface]]
        name = "lbc"

        [[interface]]
        name = "lbs"

        [[service]]
        name = "web"
        vip = "{{Vip}}"
        protocol = "tcp"
        port = 80
        mode = "dsr"
        [[service.backend]]
        address = "{{Topology.BackendIp}}"
        """;

    [Fact]
    public async Task A_dsr_service_is_answered_by_the_backend_directly_and_the_backend_sees_the_client()
    {
        using var t = Topology.Create();
        string lbcMac = Topology.Mac(t.Lb, "lbc").ToString();
        string mac = string.Join(':', Enumerable.Range(0, 6).Select(i => lbcMac.Substring(i * 2, 2))).ToLowerInvariant();
        t.Client.Ip("neigh", "replace", Vip, "lladdr", mac, "dev", "eth0", "nud", "permanent");
        foreach (var sysctl in new[] { "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.lbs.rp_filter=0" })
            t.Lb.Exec(TimeSpan.FromSeconds(10), "sysctl", "-w", sysctl);
        t.Backend.Ip("addr", "add", $"{Vip}/32", "dev", "lo");
        t.Backend.Ip("route", "add", "10.10.0.0/24", "via", Topology.LbBackendSideIp);
        using var servers = new Backends(t.Backend, Vip, 80, 5353);
        using var lb = ZonLbProcess.Start(t.Lb, Config).WaitUntilRunning();

        string body = await Clients.HttpGet(t.Client, Vip, 80);
        long big = await Clients.Download(t.Client, Vip, 80, 1_000_000, 20000);

        Assert.StartsWith($"hello from backend {Vip}, you are {Topology.ClientIp}:", body); // no NAT: the client's own address
        Assert.True(big > 1_000_000, $"{big} bytes");
        lb.Stop();
        Assert.Matches(@"to_backend=[1-9]\d* to_client=0 ", lb.Output); // the replies never went through the engine
        Assert.True(lb.Output.Contains("drops: none"), lb.Output);
    }
}
