using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using ZonLb.Engine.Configuration;
using ZonLb.Native.Bpf;
using ZonLb.Native.Ethtool;
using ZonLb.Native.Netlink;

namespace ZonLb.Engine.Diagnostics;

/// <summary>The outcome of one host check.</summary>
public enum CheckStatus
{
    /// <summary>As it should be.</summary>
    Ok,
    /// <summary>Works, but something will bite (said how).</summary>
    Warning,
    /// <summary>Will not work until fixed (said how).</summary>
    Error,
}

/// <summary>One finding: what was checked, how it stands, and what to do.</summary>
public sealed record HostCheck(string Name, CheckStatus Status, string Message);

/// <summary>
/// `zonlb-afxdp doctor`: checks this host (the network namespace it runs in) against a configuration and
/// reports every finding with what to do. Nothing is changed.
/// </summary>
public static class Doctor
{
    /// <summary>UMEM frame bytes the kernel keeps in front of a received frame (XDP_PACKET_HEADROOM).</summary>
    public const int XdpPacketHeadroom = 256;

    /// <summary>The largest peer MTU with which veth accepts an XDP program that is not multi-buffer: a 4 KiB page
    /// less the XDP headroom (256), the skb's shared info (320 on x86-64) and the Ethernet header (14); measured
    /// on this kernel (3506 accepted, 3507 refused with "Peer MTU is too large to set XDP").</summary>
    public const int VethXdpMaxPeerMtu = 3506;

    /// <summary>Checks the host for <paramref name="cfg"/>: interfaces, queues, XDP state, offloads, MTU,
    /// privileges, kernel features, sysctls and every backend's route and neighbour.</summary>
    public static List<HostCheck> Run(LoadBalancerConfig cfg)
    {
        var checks = new List<HostCheck>();
        using var nl = new RtNetlink();
        var o = cfg.Engine;
        foreach (var ic in cfg.Interfaces)
            CheckInterface(checks, nl, cfg, ic.Name);
        CheckControlSocket(checks, cfg);
        // the area is registered once per interface, and each registration pins (and is charged for) it
        CheckMemlock(checks, (long)o.FrameCount * o.FrameSize * Math.Max(1, cfg.Interfaces.Count));
        CheckBpffs(checks);
        CheckVersions(checks);
        CheckForwarding(checks, cfg);
        foreach (var s in cfg.Services)
            foreach (var b in s.Backends)
                CheckBackendNeighbor(checks, nl, s, b);
        return checks;
    }

    private static void CheckInterface(List<HostCheck> checks, RtNetlink nl, LoadBalancerConfig cfg, string name)
    {
        var link = nl.GetLink(name);
        if (link == null)
        {
            checks.Add(new($"interface {name}", CheckStatus.Error, "does not exist in this network namespace: create it, or run doctor where it lives (ip netns exec NS ...)"));
            return;
        }
        checks.Add(link.IsUp
            ? new($"interface {name}", CheckStatus.Ok, $"exists (ifindex {link.Index}) and is up")
            : new($"interface {name}", CheckStatus.Warning, $"is down: 'ip link set dev {name} up'"));

        int workers = cfg.Engine.Workers;
        int queues = EthtoolChannels.GetRxQueueCount(name);
        checks.Add(queues >= workers
            ? new($"queues {name}", CheckStatus.Ok, $"{queues} RX queue(s): one AF_XDP socket is bound on each; {workers} worker(s)")
            : new($"queues {name}", CheckStatus.Error, $"{queues} RX queue(s) for {workers} worker(s): raise the queues ('ethtool -L {name} rx {workers} tx {workers}'; veth: numrxqueues) or lower engine.workers"));

        string driver = EthtoolStats.Driver(name) ?? "unknown";
        var (dispatcher, programs) = XdpProgram.Inspect(link.Index);
        if (programs.Count == 0)
        {
            checks.Add(new($"xdp {name}", CheckStatus.Ok, $"no XDP program attached; driver {driver}: {(driver == "veth" ? "native XDP, AF_XDP copy mode (veth has no zero-copy)" : "native XDP where the driver offers it, else generic")}"));
        }
        foreach (var p in programs)
        {
            string where = dispatcher ? " in libxdp's dispatcher" : " alone (no dispatcher)";
            checks.Add(p.IsOurs && p.OwnerAlive
                ? new($"xdp {name}", CheckStatus.Ok, $"zonlb_xdp (id {p.Id}) attached by the running zonlb-afxdp (pid {p.OwnerPid}){where}")
                : p.IsOurs
                    ? new($"xdp {name}", CheckStatus.Warning, $"a stale zonlb_xdp (id {p.Id}){where} left by a killed run{(p.OwnerPid != 0 ? $" (pid {p.OwnerPid}, gone)" : "")}: the next 'zonlb-afxdp run' replaces it ('ip link set dev {name} xdp off' removes every program now)")
                    : dispatcher
                        ? new($"xdp {name}", CheckStatus.Ok, $"'{p.Name ?? "?"}' (id {p.Id}) is attached through libxdp's dispatcher: zonlb_xdp will run beside it")
                        : new($"xdp {name}", CheckStatus.Error, $"'{p.Name ?? "?"}' (id {p.Id}) is attached without libxdp's dispatcher: zonlb-afxdp cannot share the interface with it and will refuse (load it with xdp-loader instead, or remove it)"));
        }

        if (driver == "veth")
            checks.Add(new($"peer {name}", CheckStatus.Ok,
                "veth: frames leave by AF_XDP transmit (an skb), so the peer needs neither an XDP program nor GRO (that is only needed for XDP_REDIRECT into a veth)"));

        string sender = $"TX checksum offload here is {OnOff(EthtoolStats.TxChecksumOffload(name))}";
        bool? peerOffload = null;
        var peer = driver == "veth" ? VethPeer(name, link.Index) : null;
        if (peer != null)
        {
            sender = $"the peer {peer.Name} (netns {peer.Namespace}) sends with TX checksum offload {OnOff(peer.TxChecksum)}";
            peerOffload = peer.TxChecksum;
        }
        checks.Add(!cfg.Engine.RepairPartialChecksums && peerOffload == false
            ? new($"checksum {name}", CheckStatus.Ok, $"{sender}: its frames carry full checksums, so nothing needs the (switched off) partial-checksum repair")
            : cfg.Engine.RepairPartialChecksums
            ? new($"checksum {name}", CheckStatus.Ok, $"{sender}; frames sent with offload on (the veth default) arrive with CHECKSUM_PARTIAL and the engine completes their checksums")
            : new($"checksum {name}", CheckStatus.Warning, $"{sender}, and engine.repair_partial_checksums = false: TCP and UDP from senders with offload on (the veth default) will be dropped by the receiver (TCP_CSUM); 'zonlb-afxdp trace' shows them. Remove the setting"));

        int frame = link.Mtu + 14 + 4;
        int room = cfg.Engine.FrameSize - XdpPacketHeadroom;
        checks.Add(frame <= room
            ? new($"mtu {name}", CheckStatus.Ok, $"MTU {link.Mtu} fits a UMEM frame ({frame} <= {room} bytes)")
            : cfg.Engine.MultiBuffer
            ? new($"mtu {name}", CheckStatus.Ok, $"MTU {link.Mtu}: frames above a UMEM frame's {room} bytes arrive and leave as chains of frames (engine.multi_buffer)")
            : new($"mtu {name}", CheckStatus.Error, $"MTU {link.Mtu} needs {frame}-byte frames but a {cfg.Engine.FrameSize}-byte UMEM frame holds {room} after the kernel's headroom: larger frames are dropped (rx_dropped). {(cfg.Engine.FrameSize < 4096 && link.Mtu + 18 <= 4096 - XdpPacketHeadroom ? "Set engine.frame_size = 4096" : $"Lower the MTU to {room - 18}")}"));

        if (peer != null)
            checks.Add(peer.Mtu <= VethXdpMaxPeerMtu || cfg.Engine.MultiBuffer
                ? new($"peer-mtu {name}", CheckStatus.Ok, peer.Mtu <= VethXdpMaxPeerMtu
                    ? $"the peer's MTU {peer.Mtu} is within what XDP on veth takes without multi-buffer ({VethXdpMaxPeerMtu})"
                    : $"the peer's MTU {peer.Mtu} is above {VethXdpMaxPeerMtu}: taken because engine.multi_buffer loads the program as xdp.frags")
                : new($"peer-mtu {name}", CheckStatus.Error, $"the peer {peer.Name} (netns {peer.Namespace}) has MTU {peer.Mtu}, above the {VethXdpMaxPeerMtu} that XDP on veth takes without multi-buffer: attaching is refused (ERANGE). Set engine.multi_buffer = true, or lower it: 'ip -n {peer.Namespace} link set dev {peer.Name} mtu 1500'"));

        string rp = ReadSysctl($"/proc/sys/net/ipv4/conf/{name}/rp_filter");
        checks.Add(rp == "1"
            ? new($"rp_filter {name}", CheckStatus.Warning, "strict reverse-path filtering: packets the XDP program passes to the kernel from sources it would not route back out this interface are dropped (IP_RPFILTER); loose mode (2) is safer here")
            : new($"rp_filter {name}", CheckStatus.Ok, $"rp_filter = {(rp.Length == 0 ? "unknown" : rp)}"));
    }

    private static string OnOff(bool? v) => v switch { true => "on", false => "off", _ => "unknown" };

    private sealed record Peer(string Name, string Namespace, bool? TxChecksum, int Mtu);

    /// <summary>Finds the other end of a veth among the named namespaces: the one this namespace numbers with
    /// the veth's link-netnsid, holding the interface at the veth's peer_ifindex.</summary>
    private static Peer? VethPeer(string name, int ifIndex)
    {
        if (!EthtoolStats.Read(name).TryGetValue("peer_ifindex", out ulong peerIndex))
            return null;
        using var nl = new RtNetlink();
        int nsid = nl.GetLink(ifIndex)?.LinkNetnsId ?? -1;
        if (nsid < 0)
            return null; // the peer is in this namespace, or in one we do not number
        foreach (var ns in NetworkNamespaces.Named())
        {
            try
            {
                using (var handle = File.OpenHandle(ns))
                    if (nl.GetNamespaceId((int)handle.DangerousGetHandle()) != nsid)
                        continue;
                return NetworkNamespaces.Run(ns, () =>
                {
                    var peerLink = LinkOfThisNamespace((int)peerIndex);
                    return peerLink == null ? null
                        : new Peer(peerLink.Name, Path.GetFileName(ns), EthtoolStats.TxChecksumOffload(peerLink.Name), peerLink.Mtu);
                });
            }
            catch (Exception e) when (e is Native.Interop.NativeException or IOException or UnauthorizedAccessException)
            {
            }
        }
        return null;
    }

    /// <summary>An interface of the calling thread's namespace (netlink: /sys shows the mounter's).</summary>
    private static LinkInfo? LinkOfThisNamespace(int ifIndex)
    {
        using var nl = new RtNetlink();
        return nl.GetLink(ifIndex);
    }


    private static void CheckControlSocket(List<HostCheck> checks, LoadBalancerConfig cfg)
    {
        if (!File.Exists(cfg.ControlSocket))
            checks.Add(new("control socket", CheckStatus.Ok, $"{cfg.ControlSocket}: no instance running"));
        else if (Control.ControlServer.IsServed(cfg.ControlSocket))
            checks.Add(new("control socket", CheckStatus.Ok, $"{cfg.ControlSocket}: an instance is running and answers"));
        else
            checks.Add(new("control socket", CheckStatus.Warning, $"{cfg.ControlSocket}: a stale socket file (no process answers); the next run replaces it"));
    }

    private static void CheckMemlock(List<HostCheck> checks, long umemBytes)
    {
        bool ipcLock = false;
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("CapEff:", StringComparison.Ordinal) &&
                ulong.TryParse(line.AsSpan(7).Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong caps))
                ipcLock = (caps & (1UL << 14)) != 0;
        string limit = File.ReadLines("/proc/self/limits").FirstOrDefault(l => l.StartsWith("Max locked memory", StringComparison.Ordinal)) ?? "";
        string soft = limit.Length > 26 ? limit.Substring(26).Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault() ?? "" : "";
        bool enough = soft == "unlimited" || (long.TryParse(soft, out long bytes) && bytes >= umemBytes);
        checks.Add(ipcLock || enough
            ? new("memlock", CheckStatus.Ok, ipcLock ? "CAP_IPC_LOCK: the UMEM can be locked whatever RLIMIT_MEMLOCK says" : $"RLIMIT_MEMLOCK {soft} covers the {umemBytes >> 20} MiB of UMEM registrations (the area once per interface)")
            : new("memlock", CheckStatus.Error, $"no CAP_IPC_LOCK and RLIMIT_MEMLOCK {soft} is below the {umemBytes >> 20} MiB of UMEM registrations (the area once per interface): run as root, grant CAP_IPC_LOCK, or raise the limit (ulimit -l / LimitMEMLOCK=)"));
    }

    private static void CheckBpffs(List<HostCheck> checks)
    {
        bool mounted = File.ReadLines("/proc/mounts").Any(l => l.Split(' ') is { Length: > 2 } f && f[2] == "bpf");
        checks.Add(new("bpffs", CheckStatus.Ok, mounted
            ? "mounted (zonlb-afxdp pins nothing and does not use the libxdp dispatcher, so it does not need it)"
            : "not mounted: not needed (zonlb-afxdp pins nothing and does not use the libxdp dispatcher)"));
    }

    private static void CheckVersions(List<HostCheck> checks)
    {
        string release = ReadSysctl("/proc/sys/kernel/osrelease");
        var parts = release.Split('.', '-');
        int major = parts.Length > 0 && int.TryParse(parts[0], out int a) ? a : 0;
        int minor = parts.Length > 1 && int.TryParse(parts[1], out int b) ? b : 0;
        int v = major * 100 + minor;
        var missing = new List<string>();
        if (v < 504) missing.Add("need_wakeup (5.4)");
        if (v < 510) missing.Add("shared UMEM across devices and queues (5.10)");
        if (v < 511) missing.Add("preferred busy polling (5.11)");
        checks.Add(missing.Count == 0
            ? new("kernel", CheckStatus.Ok, $"{release}: need_wakeup, shared UMEM across devices and queues, busy polling")
            : new("kernel", v < 510 ? CheckStatus.Error : CheckStatus.Warning, $"{release} lacks {string.Join(", ", missing)}"));
        string libxdp = NativeLibrary.TryLoad("libxdp.so.1", out var h) ? LibraryFile("libxdp.so.1") : "";
        if (h != 0)
            NativeLibrary.Free(h);
        checks.Add(libxdp.Length > 0
            ? new("libraries", CheckStatus.Ok, $"libbpf {XdpProgram.LibBpfVersion}; libxdp {libxdp} (XDP attach and AF_XDP set-up)")
            : new("libraries", CheckStatus.Error, $"libbpf {XdpProgram.LibBpfVersion}; libxdp.so.1 not found: install libxdp1 (Debian: apt install libxdp1)"));
        checks.Add(DispatcherCheck());
    }

    /// <summary>Whether libxdp can use its dispatcher here (a bpffs where it keeps the dispatcher's state), so that
    /// zonlb_xdp shares interfaces with other programs; without it the program is attached alone.</summary>
    private static HostCheck DispatcherCheck()
    {
        var d = XdpDispatcher.Availability();
        return new("xdp dispatcher", CheckStatus.Ok, d.Usable
            ? $"libxdp's dispatcher (state in the bpffs at {d.BpfFs}): zonlb_xdp runs beside other programs attached through libxdp (xdp-loader), each in turn"
            : $"{d.Reason}: zonlb_xdp is attached alone, and an interface that carries another XDP program is refused ({d.Remedy})");
    }

    private static string LibraryFile(string soname)
    {
        foreach (var dir in new[] { "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/lib/x86_64-linux-gnu" })
        {
            string p = Path.Combine(dir, soname);
            if (File.Exists(p))
                return Path.GetFileName(new FileInfo(p).ResolveLinkTarget(true)?.FullName ?? p);
        }
        return soname;
    }

    private static void CheckForwarding(List<HostCheck> checks, LoadBalancerConfig cfg)
    {
        string fwd = ReadSysctl("/proc/sys/net/ipv4/ip_forward");
        checks.Add(fwd == "1"
            ? new("ip_forward", CheckStatus.Warning, "net.ipv4.ip_forward = 1: the kernel routes what the XDP program passes, so clients can reach backends directly around the load balancer (and see their real addresses); set it to 0 unless this host routes on purpose")
            : new("ip_forward", CheckStatus.Ok, "net.ipv4.ip_forward = 0: only the engine forwards between the client and backend sides"));
        if (!cfg.Services.Any(x => x.Vip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6))
            return;
        string fwd6 = ReadSysctl("/proc/sys/net/ipv6/conf/all/forwarding");
        checks.Add(fwd6 == "1"
            ? new("ipv6 forwarding", CheckStatus.Warning, "net.ipv6.conf.all.forwarding = 1: the kernel routes the IPv6 the XDP program passes, so clients can reach IPv6 backends around the load balancer; set it to 0 unless this host routes on purpose")
            : new("ipv6 forwarding", CheckStatus.Ok, "net.ipv6.conf.all.forwarding = 0: only the engine forwards IPv6 between the client and backend sides"));
    }

    private static void CheckBackendNeighbor(List<HostCheck> checks, RtNetlink nl, ServiceConfig s, BackendConfig b)
    {
        string name = $"backend {s.Name} {b.Address}";
        var route = nl.GetRoute(b.Address, out int errno);
        if (route == null)
        {
            checks.Add(new(name, CheckStatus.Error, $"no route to the backend ({new Native.Interop.NativeException("route lookup", errno).Message}): add a route"));
            return;
        }
        var hop = route.Gateway ?? b.Address;
        var n = nl.GetNeighbor(route.OutIfIndex, hop);
        string table = hop.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? "NDP" : "ARP";
        if (n is { IsUsable: true } u)
            checks.Add(new(name, CheckStatus.Ok, $"next hop {hop} is {string.Join(':', u.Mac!.GetAddressBytes().Select(x => x.ToString("x2", CultureInfo.InvariantCulture)))} ({table} entry present)"));
        else if (n is { } f && (f.State & NeighborInfo.NUD_FAILED) != 0)
            checks.Add(new(name, CheckStatus.Error, $"{table} for next hop {hop} failed: the backend does not answer on its link; check it is up ('ping {hop}')"));
        else
            checks.Add(new(name, CheckStatus.Warning, $"no {table} entry for next hop {hop} yet: the first packets toward it will wait (up to neighbor_wait_ms) while the engine asks the kernel to resolve it; 'ping -c1 {hop}' fills it"));
    }

    private static string ReadSysctl(string path)
    {
        try
        {
            return File.ReadAllText(path).Trim();
        }
        catch (IOException)
        {
            return "";
        }
    }

    /// <summary>0 when every check is ok, 1 with warnings, 2 with errors.</summary>
    public static int ExitCode(IEnumerable<HostCheck> checks) =>
        checks.Any(c => c.Status == CheckStatus.Error) ? 2 : checks.Any(c => c.Status == CheckStatus.Warning) ? 1 : 0;
}
