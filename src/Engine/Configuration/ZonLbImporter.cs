using System.Globalization;
using System.Net;
using Tomlyn;
using Tomlyn.Model;
using ZonLb.Engine.Packets;

namespace ZonLb.Engine.Configuration;

/// <summary>
/// Reads a zon-lb `zonlb.toml` and builds the same load balancer in our model:
/// each group `[netif.IF.GID]` (ip, proto, port) becomes a service named IF_GID with the VIP `ip`, and its
/// backends `[backend.GID_IDX]` (ip, port, options) become the service's backends. Every netif interface is
/// attached. Options: `src_ip=A` becomes the service's snat; `disable` becomes weight 0; `dsr_l2` becomes
/// mode = "dsr"; `tx`, `redirect` need nothing (forwarding follows the kernel's routes); ICMPv6 groups (proto
/// 58) become icmp services on their IPv6 VIP; what we cannot express (dsr_l3, no_nat, alt_addr) is left out and
/// said in the notes.
/// </summary>
public static class ZonLbImporter
{
    /// <summary>Reads a zon-lb configuration file; the notes say what was left out and why.</summary>
    public static (LoadBalancerConfig Config, List<string> Notes) ImportFile(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"{path}: cannot read: {e.Message}");
        }
        return Import(text, path);
    }

    /// <summary>Converts zon-lb configuration text (<paramref name="source"/> names it in messages).</summary>
    public static (LoadBalancerConfig Config, List<string> Notes) Import(string text, string source)
    {
        TomlTable root;
        try
        {
            root = TomlSerializer.Deserialize<TomlTable>(text, (TomlSerializerOptions?)null) ?? new TomlTable();
        }
        catch (TomlException e)
        {
            throw new ConfigException($"{source}:{e.Line}: TOML syntax error: {e.Message.Split('\n')[0]}");
        }
        var notes = new List<string> { $"imported from zon-lb configuration {source}: every backend has weight 1 and no health check (zon-lb has neither)" };
        var cfg = new LoadBalancerConfig { Source = source };
        if (!root.TryGetValue("netif", out var netifValue) || netifValue is not TomlTable netifs || netifs.Count == 0)
            throw new ConfigException($"{source}: no [netif.<interface>.<group>] table: not a zon-lb configuration");
        var backendTables = root.TryGetValue("backend", out var bt) && bt is TomlTable b ? b : new TomlTable();

        foreach (var (ifName, ifValue) in netifs)
        {
            if (ifValue is not TomlTable groups)
                throw new ConfigException($"{source}: netif.{ifName} must hold groups ([netif.{ifName}.<gid>])");
            if (!cfg.Interfaces.Any(i => i.Name == ifName))
                cfg.Interfaces.Add(new InterfaceConfig { Name = ifName });
            foreach (var (gid, gValue) in groups)
            {
                string at = $"netif.{ifName}.{gid}";
                if (gValue is not TomlTable g)
                    throw new ConfigException($"{source}: {at} must be a table");
                var vip = Address(g, at, "ip", source);
                long proto = g.TryGetValue("proto", out var pv) && pv is long pl ? pl : throw new ConfigException($"{source}: {at}.proto: missing or not a number");
                IpProtocol protocol;
                switch (proto)
                {
                    case 6: protocol = IpProtocol.Tcp; break;
                    case 17: protocol = IpProtocol.Udp; break;
                    case 1: protocol = IpProtocol.Icmp; break;
                    case 58:
                        protocol = IpProtocol.Icmp; // ICMPv6 echo: our "icmp" over an IPv6 VIP
                        if (vip.AddressFamily != System.Net.Sockets.AddressFamily.InterNetworkV6)
                            throw new ConfigException($"{source}: {at}: proto 58 (ICMPv6) with the IPv4 address {vip}");
                        break;
                    default:
                        throw new ConfigException($"{source}: {at}.proto = {proto}: unknown protocol (6 tcp, 17 udp, 1 icmp, 58 icmpv6)");
                }
                ushort port = 0;
                if (protocol != IpProtocol.Icmp)
                {
                    if (!g.TryGetValue("port", out var portValue) || portValue is not long portNum || portNum is < 1 or > 65535)
                        throw new ConfigException($"{source}: {at}.port: missing or out of range 1-65535");
                    port = (ushort)portNum;
                }

                IPAddress? snat = null;
                bool dsr = false;
                var backends = new List<BackendConfig>();
                string prefix = gid + "_";
                foreach (var (bkey, bValue) in backendTables.OrderBy(kv => int.TryParse(kv.Key.AsSpan(prefix.Length), out int i) ? i : int.MaxValue))
                {
                    if (!bkey.StartsWith(prefix, StringComparison.Ordinal) || bValue is not TomlTable bt2)
                        continue;
                    string bat = $"backend.{bkey}";
                    var addr = Address(bt2, bat, "ip", source);
                    ushort bport = port;
                    if (bt2.TryGetValue("port", out var bp) && bp is long bpl)
                        bport = protocol == IpProtocol.Icmp ? (ushort)0 : (ushort)bpl;
                    int weight = 1;
                    if (bt2.TryGetValue("options", out var ov) && ov is TomlArray options)
                    {
                        foreach (var o in options.OfType<string>())
                        {
                            if (o.StartsWith("src_ip=", StringComparison.Ordinal))
                            {
                                var s = IPAddress.TryParse(o.AsSpan(7), out var sa) ? sa : throw new ConfigException($"{source}: {bat}.options: \"{o}\" is not an address");
                                if (snat != null && !snat.Equals(s))
                                    notes.Add($"{bat}: src_ip {s} differs from the group's first ({snat}); the service uses {snat}");
                                snat ??= s;
                            }
                            else if (o == "disable")
                                weight = 0;
                            else if (o == "dsr_l2")
                                dsr = true;
                            else if (o is "tx" or "redirect")
                                continue;
                            else
                                notes.Add($"{bat}: option \"{o}\" is not supported by this version and was left out");
                        }
                    }
                    backends.Add(new BackendConfig { Address = addr, Port = bport, Weight = weight });
                }
                if (backends.Count == 0)
                {
                    notes.Add($"{at}: group without backends left out");
                    continue;
                }
                if (backends.Any(b => b.Address.AddressFamily != vip.AddressFamily))
                {
                    notes.Add($"{at}: backends of another address family than the VIP {vip} left out (no IPv4/IPv6 translation)");
                    backends.RemoveAll(b => b.Address.AddressFamily != vip.AddressFamily);
                    if (backends.Count == 0)
                        continue;
                }
                if (dsr && (snat != null || backends.Any(b => b.Port != port)))
                {
                    notes.Add($"{at}: dsr_l2 with src_ip or another backend port: imported as full NAT");
                    dsr = false;
                }
                var svc = new ServiceConfig { Name = $"{ifName}_{gid}", Vip = vip, Protocol = protocol, Port = port, Snat = dsr || snat == null ? new() : new() { snat }, Mode = dsr ? ForwardingMode.Dsr : ForwardingMode.Nat };
                svc.Backends.AddRange(backends);
                cfg.Services.Add(svc);
            }
        }
        foreach (var key in root.Keys)
            if (key is not ("netif" or "backend"))
                notes.Add($"[{key}] left out: nothing to set here (neighbours are resolved on demand)");
        return (cfg, notes);
    }

    private static IPAddress Address(TomlTable t, string at, string key, string source)
    {
        if (!t.TryGetValue(key, out var v) || v is not string s || !IPAddress.TryParse(s, out var a))
            throw new ConfigException($"{source}: {at}.{key}{(v != null ? " = " + Convert.ToString(v, CultureInfo.InvariantCulture) : "")}: missing or not an IP address");
        return a;
    }
}
