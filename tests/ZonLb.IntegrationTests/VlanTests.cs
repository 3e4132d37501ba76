using ZonLb.Testing;

namespace ZonLb.IntegrationTests;

/// <summary>
/// A client on VLAN 100 reaches the VIP; the replies go back tagged 100. This machine's kernel has no 802.1Q
/// (CONFIG_VLAN_8021Q unset: no VLAN interfaces anywhere), so the client's "VLAN interface" is emulated by a
/// tc program on its eth0 (tests/vlan-client): every frame it sends is tagged 100; of what it receives, it
/// keeps frames of VLAN 100 (untagged) and drops untagged IP, as a VLAN interface sees only its VLAN. Neither
/// kernel can answer ARP across the tag, so both sides get a static neighbour entry.
/// </summary>
public class VlanTests
{
    private static string Compile()
    {
        string root = Command.RepoRoot();
        string obj = Path.Combine(Path.GetTempPath(), $"zlbt-vlan-{Environment.ProcessId}.o");
        string flags = Command.Check(Path.Combine(root, "bpf", "cflags.sh")).Trim();
        var r = Command.Run("clang", flags.Split(' ').Concat(new[] {
            "-c", Path.Combine(root, "tests", "vlan-client", "vlan_client.bpf.c"), "-o", obj }), TimeSpan.FromSeconds(60));
        Assert.True(r.ExitCode == 0, r.Output);
        return obj;
    }

    private static string ColonMac(NetworkNamespace ns, string dev)
    {
        string m = Topology.Mac(ns, dev).ToString();
        return string.Join(':', Enumerable.Range(0, 6).Select(i => m.Substring(i * 2, 2))).ToLowerInvariant();
    }

    private static Topology VlanClient(string obj)
    {
        var t = Topology.Create();
        try
        {
            t.Client.Exec(TimeSpan.FromSeconds(10), "ethtool", "-K", "eth0", "txvlan", "off"); // the tag inline, for XDP to see
            foreach (var args in new[]
            {
                new[] { "qdisc", "add", "dev", "eth0", "clsact" },
                new[] { "filter", "add", "dev", "eth0", "egress", "bpf", "da", "obj", obj, "sec", "tc/egress" },
                new[] { "filter", "add", "dev", "eth0", "ingress", "bpf", "da", "obj", obj, "sec", "tc/ingress" },
            })
            {
                var r = t.Client.Exec(TimeSpan.FromSeconds(10), new[] { "tc" }.Concat(args).ToArray());
                Assert.True(r.ExitCode == 0, r.Output);
            }
            t.Client.Ip("neigh", "replace", Topology.Vip, "lladdr", ColonMac(t.Lb, "lbc"), "dev", "eth0", "nud", "permanent");
            t.Lb.Ip("neigh", "replace", Topology.ClientIp, "lladdr", ColonMac(t.Client, "eth0"), "dev", "lbc", "nud", "permanent");
            return t;
        }
        catch
        {
            t.Dispose();
            throw;
        }
    }

    private static string Config(string vlans) => Topology.DefaultConfig().Replace("name = \"lbc\"", $"name = \"lbc\"\n{vlans}");

    [Fact]
    public async Task A_client_on_a_vlan_is_served_and_answered_with_its_tag()
    {
        string obj = Compile();
        using var t = VlanClient(obj);
        using var servers = new Backends(t.Backend, Topology.BackendIp, 8080, 5353);
        using var lb = ZonLbProcess.Start(t.Lb, Config("vlans = [100]")).WaitUntilRunning();

        string body = await Clients.HttpGet(t.Client, Topology.Vip, 80);
        string udp = await Clients.UdpRequest(t.Client, Topology.Vip, 5353, "tagged");
        long big = await Clients.Download(t.Client, Topology.Vip, 80, 500_000, 20000);

        Assert.StartsWith("hello from backend", body);
        Assert.StartsWith("echo:tagged", udp);
        Assert.True(big > 500_000, $"{big} bytes");
        lb.Stop();
        Assert.Contains("drops: none", lb.Output);
        File.Delete(obj);
    }

    [Fact]
    public async Task Frames_of_a_vlan_the_interface_does_not_list_are_dropped_and_counted()
    {
        string obj = Compile();
        using var t = VlanClient(obj);
        using var servers = new Backends(t.Backend, Topology.BackendIp, 8080, 5353);
        using var lb = ZonLbProcess.Start(t.Lb, Config("vlans = [200]")).WaitUntilRunning();

        await Assert.ThrowsAnyAsync<Exception>(() => Clients.UdpRequest(t.Client, Topology.Vip, 5353, "wrong vlan", timeoutMs: 1500));
        lb.Stop();
        Assert.Matches(@"vlan_not_configured=[1-9]", lb.Output);
        File.Delete(obj);
    }
}
