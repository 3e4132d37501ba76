using System.Net.NetworkInformation;

namespace ZonLb.Testing;

/// <summary>
/// The three-namespace test topology, made fresh for each fixture:
/// <code>
///   client ns                 load balancer ns                 backend ns
///  [eth0 10.10.0.2] ---veth--- [lbc 10.10.0.1 | lbs 10.20.0.1] ---veth--- [eth0 10.20.0.2]
///   fd00:10::2                   fd00:10::1 | fd00:20::1                    fd00:20::2
///                                 (VIP 10.10.0.1 and fd00:10::1, zonlb-afxdp)
/// </code>
/// IPv6 addresses are added without duplicate address detection (nodad), so they are usable at once.
/// veths are created inside the namespaces, never in the root one, with their default settings (TX
/// checksum offload on, one queue unless asked). Dispose deletes all three namespaces.
/// </summary>
public sealed class Topology : IDisposable
{
    public const string ClientIp = "10.10.0.2";
    public const string Vip = "10.10.0.1";
    public const string LbBackendSideIp = "10.20.0.1";
    public const string BackendIp = "10.20.0.2";
    /// <summary>A second address in the backend namespace, for a second backend server.</summary>
    public const string BackendIp2 = "10.20.0.3";
    public const string ClientIp6 = "fd00:10::2";
    public const string Vip6 = "fd00:10::1";
    public const string LbBackendSideIp6 = "fd00:20::1";
    public const string BackendIp6 = "fd00:20::2";
    public const string BackendIp6b = "fd00:20::3";

    private Topology(NetworkNamespace client, NetworkNamespace lb, NetworkNamespace backend)
    {
        Client = client;
        Lb = lb;
        Backend = backend;
    }

    public NetworkNamespace Client { get; }
    public NetworkNamespace Lb { get; }
    public NetworkNamespace Backend { get; }

    /// <param name="queues">RX/TX queues of each veth; 0 leaves the kernel's default.</param>
    public static Topology Create(int queues = 0)
    {
        NetworkNamespace.ReapOrphans();
        var created = new List<NetworkNamespace>();
        try
        {
            var c = NetworkNamespace.Create("c"); created.Add(c);
            var l = NetworkNamespace.Create("l"); created.Add(l);
            var s = NetworkNamespace.Create("s"); created.Add(s);
            string[] q = queues > 0 ? new[] { "numtxqueues", $"{queues}", "numrxqueues", $"{queues}" } : Array.Empty<string>();
            l.Ip(new[] { "link", "add", "name", "lbc" }.Concat(q).Concat(new[] { "type", "veth", "peer", "name", "eth0", "netns", c.Name }).Concat(q).ToArray());
            l.Ip(new[] { "link", "add", "name", "lbs" }.Concat(q).Concat(new[] { "type", "veth", "peer", "name", "eth0", "netns", s.Name }).Concat(q).ToArray());
            l.Ip("addr", "add", $"{Vip}/24", "dev", "lbc");
            l.Ip("addr", "add", $"{LbBackendSideIp}/24", "dev", "lbs");
            c.Ip("addr", "add", $"{ClientIp}/24", "dev", "eth0");
            s.Ip("addr", "add", $"{BackendIp}/24", "dev", "eth0");
            s.Ip("addr", "add", $"{BackendIp2}/24", "dev", "eth0");
            l.Ip("-6", "addr", "add", $"{Vip6}/64", "dev", "lbc", "nodad");
            l.Ip("-6", "addr", "add", $"{LbBackendSideIp6}/64", "dev", "lbs", "nodad");
            c.Ip("-6", "addr", "add", $"{ClientIp6}/64", "dev", "eth0", "nodad");
            s.Ip("-6", "addr", "add", $"{BackendIp6}/64", "dev", "eth0", "nodad");
            s.Ip("-6", "addr", "add", $"{BackendIp6b}/64", "dev", "eth0", "nodad");
            l.Ip("link", "set", "lbc", "up");
            l.Ip("link", "set", "lbs", "up");
            c.Ip("link", "set", "eth0", "up");
            s.Ip("link", "set", "eth0", "up");
            return new Topology(c, l, s);
        }
        catch
        {
            foreach (var ns in created)
                ns.Dispose();
            throw;
        }
    }

    /// <summary>The standard config for this topology: TCP 80 -> 8080, UDP 5353 -> 5353, ICMP echo.</summary>
    public static string DefaultConfig(string extra = "") => $$"""
        [[interface]]
        name = "lbc"

        [[interface]]
        name = "lbs"

        [[service]]
        name = "web"
        vip = "{{Vip}}"
        protocol = "tcp"
        port = 80
        [[service.backend]]
        address = "{{BackendIp}}"
        port = 8080

        [[service]]
        name = "dns"
        vip = "{{Vip}}"
        protocol = "udp"
        port = 5353
        [[service.backend]]
        address = "{{BackendIp}}"

        [[service]]
        name = "ping"
        vip = "{{Vip}}"
        protocol = "icmp"
        [[service.backend]]
        address = "{{BackendIp}}"
        {{extra}}
        """;

    /// <summary>The IPv6 twin of <see cref="DefaultConfig"/>: TCP 80 -> 8080, UDP 5353, ICMPv6 echo on the IPv6 VIP.</summary>
    public static string Ipv6Config(string extra = "") => $$"""
        [[interface]]
        name = "lbc"

        [[interface]]
        name = "lbs"

        [[service]]
        name = "web6"
        vip = "{{Vip6}}"
        protocol = "tcp"
        port = 80
        [[service.backend]]
        address = "{{BackendIp6}}"
        port = 8080

        [[service]]
        name = "dns6"
        vip = "{{Vip6}}"
        protocol = "udp"
        port = 5353
        [[service.backend]]
        address = "{{BackendIp6}}"

        [[service]]
        name = "ping6"
        vip = "{{Vip6}}"
        protocol = "icmp"
        [[service.backend]]
        address = "{{BackendIp6}}"
        {{extra}}
        """;

    /// <summary>Waits (up to 5 s) until no IPv6 address of the three namespaces is tentative: until an
    /// interface's link-local address has passed duplicate address detection, the kernel sends no neighbour
    /// solicitation for resolutions asked over netlink (the engine's).</summary>
    public void WaitForIpv6Ready()
    {
        var until = DateTime.UtcNow.AddSeconds(5);
        while (DateTime.UtcNow < until &&
               new[] { Client, Lb, Backend }.Any(ns => ns.Ip("-6", "addr", "show").Contains("tentative", StringComparison.Ordinal)))
            Thread.Sleep(100);
    }

    /// <summary>The MAC of an interface in a namespace.</summary>
    public static PhysicalAddress Mac(NetworkNamespace ns, string ifName)
    {
        string text = ns.Ip("-o", "link", "show", "dev", ifName);
        int i = text.IndexOf("link/ether ", StringComparison.Ordinal);
        return PhysicalAddress.Parse(text.Substring(i + 11, 17).Replace(':', '-').ToUpperInvariant());
    }

    /// <summary>Names of interfaces in a namespace that carry an XDP program.</summary>
    public static List<string> InterfacesWithXdp(NetworkNamespace ns)
    {
        var list = new List<string>();
        foreach (var line in ns.Ip("-o", "link", "show").Split('\n', StringSplitOptions.RemoveEmptyEntries))
            if (line.Contains(" xdp", StringComparison.Ordinal) || line.Contains("prog/xdp", StringComparison.Ordinal))
                list.Add(line.Split(':')[1].Trim().Split('@')[0]);
        return list;
    }

    public void Dispose()
    {
        Client.Dispose();
        Lb.Dispose();
        Backend.Dispose();
    }
}
