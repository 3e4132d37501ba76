using System.Buffers.Binary;
using System.Net;
using System.Net.NetworkInformation;
using ZonLb.Native.Interop;

namespace ZonLb.Native.Netlink;

/// <summary>
/// A small synchronous rtnetlink client (NETLINK_ROUTE) for links, addresses, routes and neighbours in the
/// caller's network namespace. Not thread-safe: one owner.
/// </summary>
public sealed unsafe class RtNetlink : IDisposable
{
    private const ushort NLMSG_ERROR = 2, NLMSG_DONE = 3;
    private const ushort NLM_F_REQUEST = 0x1, NLM_F_ACK = 0x4, NLM_F_ROOT = 0x100, NLM_F_MATCH = 0x200,
        NLM_F_REPLACE = 0x100, NLM_F_CREATE = 0x400, NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH;
    private const ushort RTM_NEWLINK = 16, RTM_GETLINK = 18, RTM_NEWADDR = 20, RTM_GETADDR = 22,
        RTM_NEWROUTE = 24, RTM_GETROUTE = 26, RTM_NEWNEIGH = 28, RTM_GETNEIGH = 30;
    private const ushort IFLA_ADDRESS = 1, IFLA_IFNAME = 3, IFLA_MTU = 4, IFLA_LINK = 5, IFLA_LINKINFO = 18, IFLA_LINK_NETNSID = 37;
    private const ushort IFLA_INFO_KIND = 1, IFLA_INFO_DATA = 2, IFLA_VLAN_ID = 1;
    private const ushort RTM_NEWNSID = 88, RTM_GETNSID = 90, NETNSA_NSID = 1, NETNSA_FD = 3;
    private const ushort IFA_ADDRESS = 1, IFA_LOCAL = 2;
    private const ushort RTA_DST = 1, RTA_OIF = 4, RTA_GATEWAY = 5, RTA_PREFSRC = 7;
    private const ushort NDA_DST = 1, NDA_LLADDR = 2;
    private const byte NTF_USE = 0x01;
    private const uint IFF_UP = 0x1;
    private const int NlHeader = 16;

    private readonly FileDescriptorHandle _socket;
    private readonly int _fd;
    private readonly byte[] _rx = new byte[64 * 1024];
    private readonly byte[] _tx = new byte[512];
    private uint _seq;

    public RtNetlink()
    {
        _socket = new FileDescriptorHandle(Libc.socket(Libc.AF_NETLINK, Libc.SOCK_RAW | Libc.SOCK_CLOEXEC, 0 /* NETLINK_ROUTE */));
        if (_socket.IsInvalid)
            throw NativeException.FromLastError("socket(AF_NETLINK, NETLINK_ROUTE)");
        _fd = _socket.Fd;
    }

    public void Dispose() => _socket.Dispose();

    // ---- links ----

    /// <summary>The interface called name, or null when there is none.</summary>
    public LinkInfo? GetLink(string name)
    {
        var w = Begin(RTM_GETLINK, NLM_F_REQUEST);
        w.Bytes(16); // struct ifinfomsg { u8 family; u8 pad; u16 type; s32 index; u32 flags; u32 change; }
        w.AttrString(IFLA_IFNAME, name);
        return QueryLink(w, name);
    }

    /// <summary>The interface with this index, or null when there is none.</summary>
    public LinkInfo? GetLink(int ifIndex)
    {
        var w = Begin(RTM_GETLINK, NLM_F_REQUEST);
        w.Bytes(4); // family, pad, type
        w.Int32(ifIndex);
        w.Bytes(8); // flags, change
        return QueryLink(w, $"ifindex {ifIndex}");
    }

    /// <summary>Sends an RTM_GETLINK request and parses the answer; null when there is no such interface.</summary>
    private LinkInfo? QueryLink(MessageWriter w, string which)
    {
        LinkInfo? found = null;
        int err = Transact(w, (type, msg) =>
        {
            if (type == RTM_NEWLINK)
                found = ParseLink(msg);
        });
        if (err == Errno.ENODEV)
            return null;
        if (err != 0)
            throw new NativeException($"rtnetlink RTM_GETLINK {which}", err);
        return found;
    }

    /// <summary>Every interface of this namespace.</summary>
    public List<LinkInfo> ListLinks()
    {
        var w = Begin(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP);
        w.Bytes(16);
        var list = new List<LinkInfo>();
        int err = Transact(w, (type, msg) =>
        {
            if (type == RTM_NEWLINK)
                list.Add(ParseLink(msg));
        });
        if (err != 0)
            throw new NativeException("rtnetlink RTM_GETLINK dump", err);
        return list;
    }

    private static LinkInfo ParseLink(ReadOnlySpan<byte> msg)
    {
        int index = BinaryPrimitives.ReadInt32LittleEndian(msg.Slice(4));
        uint flags = BinaryPrimitives.ReadUInt32LittleEndian(msg.Slice(8));
        string name = "";
        var mac = PhysicalAddress.None;
        int mtu = 0, netnsId = -1, parent = 0, vlanId = -1;
        for (var a = new AttrReader(msg.Slice(16)); a.MoveNext();)
        {
            switch (a.Type)
            {
                case IFLA_LINK: parent = BinaryPrimitives.ReadInt32LittleEndian(a.Value); break;
                case IFLA_LINKINFO:
                {
                    bool vlan = false;
                    for (var info = new AttrReader(a.Value); info.MoveNext();)
                    {
                        if (info.Type == IFLA_INFO_KIND)
                            vlan = info.Value.TrimEnd((byte)0).SequenceEqual("vlan"u8);
                        else if (info.Type == IFLA_INFO_DATA && vlan)
                            for (var d = new AttrReader(info.Value); d.MoveNext();)
                                if (d.Type == IFLA_VLAN_ID && d.Value.Length >= 2)
                                    vlanId = BinaryPrimitives.ReadUInt16LittleEndian(d.Value);
                    }
                    break;
                }
                case IFLA_LINK_NETNSID: netnsId = BinaryPrimitives.ReadInt32LittleEndian(a.Value); break;
                case IFLA_IFNAME: name = System.Text.Encoding.ASCII.GetString(a.Value.TrimEnd((byte)0)); break;
                case IFLA_ADDRESS: mac = new PhysicalAddress(a.Value.ToArray()); break;
                case IFLA_MTU: mtu = BinaryPrimitives.ReadInt32LittleEndian(a.Value); break;
            }
        }
        return new LinkInfo(index, name, mac, mtu, (flags & IFF_UP) != 0, netnsId, vlanId, vlanId >= 0 ? parent : 0);
    }

    /// <summary>The id this namespace gives the namespace open at fd (RTM_GETNSID), or -1 when it has none.</summary>
    public int GetNamespaceId(int fd)
    {
        var w = Begin(RTM_GETNSID, NLM_F_REQUEST);
        w.Bytes(4); // struct rtgenmsg { u8 family; } padded
        Span<byte> v = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(v, (uint)fd);
        w.Attr(NETNSA_FD, v);
        int id = -1;
        int err = Transact(w, (type, msg) =>
        {
            if (type != RTM_NEWNSID || msg.Length < 4)
                return;
            for (var a = new AttrReader(msg.Slice(4)); a.MoveNext();)
                if (a.Type == NETNSA_NSID && a.Value.Length >= 4)
                    id = BinaryPrimitives.ReadInt32LittleEndian(a.Value);
        });
        return err == 0 ? id : -1;
    }

    // ---- addresses ----

    /// <summary>The IPv4 addresses of an interface, primary first.</summary>
    public List<IPAddress> GetIPv4Addresses(int ifIndex) => GetAddresses(ifIndex, Libc.AF_INET);

    /// <summary>The IPv6 addresses of an interface with global (or site) scope: link-local ones are left out.</summary>
    public List<IPAddress> GetIPv6Addresses(int ifIndex) => GetAddresses(ifIndex, Libc.AF_INET6);

    private List<IPAddress> GetAddresses(int ifIndex, int family)
    {
        int size = family == Libc.AF_INET ? 4 : 16;
        var w = Begin(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP);
        w.Byte((byte)family); // struct ifaddrmsg { u8 family; u8 prefixlen; u8 flags; u8 scope; u32 index; }
        w.Bytes(7);
        var list = new List<IPAddress>();
        int err = Transact(w, (type, msg) =>
        {
            if (type != RTM_NEWADDR || msg.Length < 8 || BinaryPrimitives.ReadInt32LittleEndian(msg.Slice(4)) != ifIndex)
                return;
            const byte RT_SCOPE_LINK = 253;
            if (family != Libc.AF_INET && msg[3] >= RT_SCOPE_LINK)
                return;
            IPAddress? local = null, address = null;
            for (var a = new AttrReader(msg.Slice(8)); a.MoveNext();)
            {
                if (a.Type == IFA_LOCAL && a.Value.Length == size) local = new IPAddress(a.Value);
                else if (a.Type == IFA_ADDRESS && a.Value.Length == size) address = new IPAddress(a.Value);
            }
            if ((local ?? address) is { } ip)
                list.Add(ip);
        });
        if (err != 0)
            throw new NativeException($"rtnetlink RTM_GETADDR for interface {ifIndex}", err);
        return list;
    }

    // ---- routes ----

    /// <summary>The kernel's route to an IPv4 or IPv6 destination; the errno (ENETUNREACH, EHOSTUNREACH...) when there is none.</summary>
    public RouteInfo? GetRoute(IPAddress destination, out int errno)
    {
        var w = Begin(RTM_GETROUTE, NLM_F_REQUEST);
        // struct rtmsg { u8 family, dst_len, src_len, tos, table, protocol, scope, type; u32 flags; }
        int size = AddressSize(destination);
        w.Byte(Family(destination));
        w.Byte((byte)(size * 8));
        w.Bytes(10);
        Span<byte> dst = stackalloc byte[16];
        destination.TryWriteBytes(dst, out _);
        w.Attr(RTA_DST, dst.Slice(0, size));
        RouteInfo? route = null;
        errno = Transact(w, (type, msg) =>
        {
            if (type != RTM_NEWROUTE)
                return;
            int oif = 0;
            IPAddress? gw = null, src = null;
            for (var a = new AttrReader(msg.Slice(12)); a.MoveNext();)
            {
                if (a.Type == RTA_OIF) oif = BinaryPrimitives.ReadInt32LittleEndian(a.Value);
                else if (a.Type == RTA_GATEWAY && a.Value.Length == size) gw = new IPAddress(a.Value);
                else if (a.Type == RTA_PREFSRC && a.Value.Length == size) src = new IPAddress(a.Value);
            }
            route = new RouteInfo(oif, gw, src);
        });
        return errno == 0 ? route : null;
    }

    // ---- neighbours ----

    /// <summary>The neighbour (ARP or NDP) entry for an address on an interface, or null when the kernel has none.</summary>
    public NeighborInfo? GetNeighbor(int ifIndex, IPAddress address)
    {
        var w = Begin(RTM_GETNEIGH, NLM_F_REQUEST);
        NdMsg(ref w, Family(address), ifIndex, 0, 0);
        Span<byte> dst = stackalloc byte[16];
        address.TryWriteBytes(dst, out _);
        w.Attr(NDA_DST, dst.Slice(0, AddressSize(address)));
        NeighborInfo? found = null;
        int err = Transact(w, (type, msg) =>
        {
            if (type != RTM_NEWNEIGH || msg.Length < 12)
                return;
            ushort state = BinaryPrimitives.ReadUInt16LittleEndian(msg.Slice(8));
            PhysicalAddress? mac = null;
            for (var a = new AttrReader(msg.Slice(12)); a.MoveNext();)
                if (a.Type == NDA_LLADDR && a.Value.Length == 6) mac = new PhysicalAddress(a.Value.ToArray());
            found = new NeighborInfo(state, mac);
        });
        if (err == Errno.ENOENT)
            return null;
        if (err != 0)
            throw new NativeException($"rtnetlink RTM_GETNEIGH {address} on interface {ifIndex}", err);
        return found;
    }

    /// <summary>Asks the kernel to resolve (ARP, or NDP for IPv6) an address as if it were about to send to it
    /// (NTF_USE); the entry is created when missing. The answer arrives later in the neighbour table.</summary>
    public void TriggerNeighborResolution(int ifIndex, IPAddress address)
    {
        var w = Begin(RTM_NEWNEIGH, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE);
        NdMsg(ref w, Family(address), ifIndex, 0, NTF_USE);
        Span<byte> dst = stackalloc byte[16];
        address.TryWriteBytes(dst, out _);
        w.Attr(NDA_DST, dst.Slice(0, AddressSize(address)));
        int err = Transact(w, static (_, _) => { });
        if (err != 0)
            throw new NativeException($"rtnetlink RTM_NEWNEIGH (NTF_USE) {address} on interface {ifIndex}", err);
    }

    private static byte Family(IPAddress a) =>
        (byte)(a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? Libc.AF_INET6 : Libc.AF_INET);

    private static int AddressSize(IPAddress a) =>
        a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? 16 : 4;

    private static void NdMsg(ref MessageWriter w, byte family, int ifIndex, ushort state, byte flags)
    {
        // struct ndmsg { u8 family; u8 pad1; u16 pad2; s32 ifindex; u16 state; u8 flags; u8 type; }
        w.Byte(family);
        w.Bytes(3);
        w.Int32(ifIndex);
        w.UInt16(state);
        w.Byte(flags);
        w.Byte(0);
    }

    // ---- transport ----

    private delegate void MessageHandler(ushort type, ReadOnlySpan<byte> payload);

    private MessageWriter Begin(ushort type, ushort flags)
    {
        var w = new MessageWriter(_tx);
        w.UInt32(0); // length, patched in Finish
        w.UInt16(type);
        w.UInt16(flags);
        w.UInt32(++_seq);
        w.UInt32(0);
        return w;
    }

    /// <summary>Sends one request and reads its answers until done; returns 0 or the kernel's errno.</summary>
    private int Transact(MessageWriter w, MessageHandler handler)
    {
        int len = w.Length;
        BinaryPrimitives.WriteUInt32LittleEndian(_tx, (uint)len);
        ushort flags = BinaryPrimitives.ReadUInt16LittleEndian(_tx.AsSpan(6));
        // A dump answers with several messages closed by NLMSG_DONE; a get answers with one (or an error).
        bool dump = (flags & NLM_F_DUMP) == NLM_F_DUMP;
        uint seq = _seq;
        fixed (byte* p = _tx)
        {
            if (Libc.send(_fd, p, (nuint)len, 0) < 0)
                throw NativeException.FromLastError("send on rtnetlink socket");
        }
        while (true)
        {
            nint n;
            fixed (byte* p = _rx)
                n = Libc.recv(_fd, p, (nuint)_rx.Length, 0);
            if (n < 0)
            {
                int e = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
                if (e == Errno.EINTR)
                    continue;
                throw new NativeException("recv on rtnetlink socket", e);
            }
            var buf = _rx.AsSpan(0, (int)n);
            while (buf.Length >= NlHeader)
            {
                int mlen = (int)BinaryPrimitives.ReadUInt32LittleEndian(buf);
                if (mlen < NlHeader || mlen > buf.Length)
                    break;
                ushort type = BinaryPrimitives.ReadUInt16LittleEndian(buf.Slice(4));
                uint mseq = BinaryPrimitives.ReadUInt32LittleEndian(buf.Slice(8));
                var payload = buf.Slice(NlHeader, mlen - NlHeader);
                if (mseq == seq)
                {
                    if (type == NLMSG_ERROR)
                        return -BinaryPrimitives.ReadInt32LittleEndian(payload);
                    if (type == NLMSG_DONE)
                        return 0;
                    handler(type, payload);
                    if (!dump)
                        return 0;
                }
                buf = buf.Slice(Math.Min(Align4(mlen), buf.Length));
            }
        }
    }

    internal static int Align4(int n) => (n + 3) & ~3;
}
