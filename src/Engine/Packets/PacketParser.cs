using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using ZonLb.Engine.Counters;

namespace ZonLb.Engine.Packets;

/// <summary>
/// What the engine needs to know of a frame: where its headers are and its flow fields. Ports for ICMP echo
/// hold the identifier; <see cref="IcmpType"/> of an ICMPv6 echo is given as its ICMPv4 twin (8 request,
/// 0 reply), so one code path serves both families.
/// </summary>
internal struct ParsedPacket
{
    public int L3Offset;
    /// <summary>Where the transport header starts (after IPv4 options or IPv6 extension headers).</summary>
    public int L4Offset;
    /// <summary>IP total length (IPv6: 40 + payload length): the frame may be longer (Ethernet padding); it never is shorter.</summary>
    public int IpTotalLength;
    public IpProtocol Protocol;
    public bool IsV6;
    public IpAddr SrcIp;
    public IpAddr DstIp;
    public ushort SrcPort;
    public ushort DstPort;
    /// <summary>TTL, or the IPv6 hop limit.</summary>
    public byte Ttl;
    public byte IcmpType;
    public byte TcpFlags;
    /// <summary>The 802.1Q VLAN id of a tagged frame; 0 when untagged.</summary>
    public ushort Vlan;
    /// <summary>An ICMP/ICMPv6 error (destination unreachable, packet too big, time exceeded): the Inner* fields
    /// describe the packet it quotes, from its own header (so its source is one of our addresses).</summary>
    public bool IsIcmpError;
    public int InnerL3Offset;
    public int InnerL4Offset;
    /// <summary>How many bytes of the quoted packet's transport header are present (at least 8).</summary>
    public int InnerL4Length;
    public IpProtocol InnerProtocol;
    public IpAddr InnerSrc;
    public IpAddr InnerDst;
    public ushort InnerSrcPort;
    public ushort InnerDstPort;
    /// <summary>A fragment of a larger datagram: the first (offset 0, ports present, transport header parsed)
    /// or a later one (no transport header: Protocol is known, ports are 0).</summary>
    public bool IsFragment;
    /// <summary>A fragment other than the first: it carries no transport header.</summary>
    public bool IsLaterFragment;
    /// <summary><see cref="FlowHash"/> holds the hash of the packet's flow key (set when a batch's lookups were
    /// prefetched, so that the lookup does not hash again).</summary>
    public bool HasFlowHash;
    /// <summary>The datagram's identification (IPv4: 16 bits, IPv6: 32 bits), shared by all its fragments.</summary>
    public uint FragmentId;
    /// <summary>The flow key's hash (<see cref="Flows.FlowKey.GetHashCode"/>) when <see cref="HasFlowHash"/>.</summary>
    public int FlowHash;

    /// <summary>Bytes of the IP packet past the frame's first buffer, in the later buffers of a multi-buffer
    /// chain (0 for a frame of one buffer). The headers are all in the first.</summary>
    public int Beyond;
    /// <summary>The one's complement sum of those bytes (as 16-bit words counted from the transport header's
    /// start, so that it adds to the first buffer's part), for completing a partial checksum; set by the
    /// receiver of the chain.</summary>
    public ulong BeyondSum;

    /// <summary>A UDP datagram (not a fragment) whose length field is shorter than the IP payload: bytes after the
    /// datagram, which the receiver's kernel trims and the pipeline trims before forwarding; the UDP length is
    /// <see cref="UdpLength"/>.</summary>
    public bool HasUdpTrailer;
    public int UdpLength;

    public readonly int L4Length => L3Offset + IpTotalLength - L4Offset;
    /// <summary>The transport header and payload within the first buffer.</summary>
    public readonly int L4InFrame => L4Length - Beyond;
}

/// <summary>
/// Parses Ethernet (with at most one 802.1Q tag), IPv4 or IPv6 (walking hop-by-hop, routing, destination
/// options, authentication and atomic fragment headers) and the TCP/UDP/ICMP-echo header, checking bounds
/// once per header. Never throws: a frame it cannot use yields a <see cref="DropReason"/>.
/// </summary>
internal static class PacketParser
{
    public static DropReason Parse(ReadOnlySpan<byte> frame, out ParsedPacket p) => Parse(frame, 0, out p);

    /// <summary>Parses the first buffer of a frame whose last <paramref name="beyond"/> bytes are in later
    /// buffers (a multi-buffer chain; 0 for a frame of one buffer): every header must be in the first.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)] // compiled on its own, with its own inlining budget
    public static DropReason Parse(ReadOnlySpan<byte> frame, int beyond, out ParsedPacket p)
    {
        p = default;
        if (frame.Length < Wire.EthernetHeader)
            return DropReason.Truncated;
        int l3 = Wire.EthernetHeader;
        ushort etherType = BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(12));
        if (etherType == Wire.EtherTypeVlan)
        {
            if (frame.Length < Wire.EthernetHeader + Wire.VlanTag)
                return DropReason.Truncated;
            etherType = BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(16));
            p.Vlan = (ushort)(BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(14)) & 0x0FFF);
            l3 += Wire.VlanTag;
        }
        if (etherType == Wire.EtherTypeIPv6)
            return ParseV6(frame, l3, beyond, ref p);
        if (etherType != Wire.EtherTypeIPv4)
            return DropReason.NotIp;

        var ip = frame.Slice(l3);
        if (ip.Length < Wire.IPv4MinHeader)
            return DropReason.Truncated;
        // the fixed 20 bytes in three loads (little-endian words; fields are picked out and byte-swapped)
        ulong w0 = MemoryMarshal.Read<ulong>(ip);           // version/IHL, TOS, total length, id, fragment
        ulong w1 = MemoryMarshal.Read<ulong>(ip.Slice(8));  // TTL, protocol, checksum, source
        uint w2 = MemoryMarshal.Read<uint>(ip.Slice(16));   // destination
        byte versionIhl = (byte)w0;
        if (versionIhl >> 4 != 4)
            return DropReason.Malformed;
        int ihl = (versionIhl & 0x0F) * 4;
        int total = BinaryPrimitives.ReverseEndianness((ushort)(w0 >> 16));
        if (ihl < Wire.IPv4MinHeader || total < ihl || total > ip.Length + beyond)
            return DropReason.Malformed;
        ushort frag = BinaryPrimitives.ReverseEndianness((ushort)(w0 >> 48));
        if ((frag & 0x3FFF) != 0) // MF set or offset non-zero
        {
            p.IsFragment = true;
            p.IsLaterFragment = (frag & 0x1FFF) != 0;
            p.FragmentId = BinaryPrimitives.ReverseEndianness((ushort)(w0 >> 32));
        }

        p.L3Offset = l3;
        p.L4Offset = l3 + ihl;
        p.IpTotalLength = total;
        int inFrame = total;
        if (total > ip.Length)
        {
            inFrame = ip.Length;
            p.Beyond = total - inFrame;
        }
        p.Ttl = (byte)w1;
        byte protocol = (byte)(w1 >> 8);
        p.SrcIp = IpAddr.FromV4(BinaryPrimitives.ReverseEndianness((uint)(w1 >> 32)));
        p.DstIp = IpAddr.FromV4(BinaryPrimitives.ReverseEndianness(w2));
        if (p.IsLaterFragment)
            return LaterFragment(protocol, ref p);
        if (inFrame < ihl)
            return DropReason.Truncated;
        return ParseTransport(ip.Slice(ihl, inFrame - ihl), total - ihl, protocol, ref p);
    }

    /// <summary>A fragment after the first: only the protocol is known; the ports come from its first fragment.</summary>
    private static DropReason LaterFragment(byte protocol, ref ParsedPacket p)
    {
        switch (protocol)
        {
            case (byte)IpProtocol.Tcp:
            case (byte)IpProtocol.Udp:
                p.Protocol = (IpProtocol)protocol;
                return DropReason.None;
            case (byte)IpProtocol.Icmp when !p.IsV6:
            case Wire.ProtoIcmpv6 when p.IsV6:
                p.Protocol = IpProtocol.Icmp;
                return DropReason.None;
            default:
                return DropReason.UnsupportedProtocol;
        }
    }

    private static DropReason ParseV6(ReadOnlySpan<byte> frame, int l3, int beyond, ref ParsedPacket p)
    {
        var ip = frame.Slice(l3);
        if (ip.Length < Wire.IPv6Header)
            return DropReason.Truncated;
        if (ip[0] >> 4 != 6)
            return DropReason.Malformed;
        int total = Wire.IPv6Header + BinaryPrimitives.ReadUInt16BigEndian(ip.Slice(Wire.Ip6PayloadLength));
        if (total > ip.Length + beyond)
            return DropReason.Malformed; // also jumbograms (payload length 0 with a hop-by-hop jumbo option)
        p.IsV6 = true;
        p.L3Offset = l3;
        p.IpTotalLength = total;
        int inFrame = total; // the extension headers must be in the first buffer
        if (total > ip.Length)
        {
            inFrame = ip.Length;
            p.Beyond = total - inFrame;
        }
        p.Ttl = ip[Wire.Ip6HopLimit];
        p.SrcIp = IpAddr.ReadV6(ip.Slice(Wire.Ip6Src));
        p.DstIp = IpAddr.ReadV6(ip.Slice(Wire.Ip6Dst));

        byte next = ip[Wire.Ip6NextHeader];
        int off = Wire.IPv6Header;
        for (int n = 0; ; n++)
        {
            if (next is not (Wire.Ip6HopByHop or Wire.Ip6Routing or Wire.Ip6Fragment or Wire.Ip6DestOptions or Wire.Ip6Auth))
                break;
            if (n == Wire.Ip6MaxExtensionHeaders || off + 8 > inFrame)
                return n == Wire.Ip6MaxExtensionHeaders ? DropReason.Malformed : DropReason.Truncated;
            int length = next switch
            {
                Wire.Ip6Fragment => 8,
                Wire.Ip6Auth => (ip[off + 1] + 2) * 4,
                _ => (ip[off + 1] + 1) * 8,
            };
            if (next == Wire.Ip6HopByHop && off != Wire.IPv6Header)
                return DropReason.Malformed; // hop-by-hop only directly after the fixed header (RFC 8200 4.1)
            if (next == Wire.Ip6Fragment)
            {
                ushort frag = BinaryPrimitives.ReadUInt16BigEndian(ip.Slice(off + 2));
                if ((frag & 0xFFF9) != 0) // offset non-zero or M set; an atomic fragment is whole
                {
                    p.IsFragment = true;
                    p.IsLaterFragment = (frag & 0xFFF8) != 0;
                    p.FragmentId = BinaryPrimitives.ReadUInt32BigEndian(ip.Slice(off + 4));
                }
            }
            if (off + length > inFrame)
                return DropReason.Truncated;
            next = ip[off];
            off += length;
            if (p.IsLaterFragment)
                break; // what follows is the middle of the datagram, not headers
        }
        p.L4Offset = l3 + off;
        if (p.IsLaterFragment)
            return LaterFragment(next, ref p);
        return ParseTransport(ip.Slice(off, inFrame - off), total - off, next, ref p);
    }

    /// <param name="l4">The transport header and what follows it in the first buffer.</param>
    /// <param name="l4Length">The transport header and payload in all (more than l4's length in a chain).</param>
    private static DropReason ParseTransport(ReadOnlySpan<byte> l4, int l4Length, byte protocol, ref ParsedPacket p)
    {
        switch (protocol)
        {
            case (byte)IpProtocol.Tcp:
                if (l4.Length < Wire.TcpMinHeader)
                    return DropReason.Truncated;
                int dataOffset = (l4[12] >> 4) * 4;
                if (dataOffset < Wire.TcpMinHeader || dataOffset > l4.Length)
                    return DropReason.Malformed;
                p.Protocol = IpProtocol.Tcp;
                p.SrcPort = BinaryPrimitives.ReadUInt16BigEndian(l4);
                p.DstPort = BinaryPrimitives.ReadUInt16BigEndian(l4.Slice(2));
                p.TcpFlags = l4[Wire.TcpFlags];
                return DropReason.None;
            case (byte)IpProtocol.Udp:
                if (l4.Length < Wire.UdpHeader)
                    return DropReason.Truncated;
                int udpLength = BinaryPrimitives.ReadUInt16BigEndian(l4.Slice(4));
                if (udpLength < Wire.UdpHeader || (p.IsFragment ? udpLength < l4Length : udpLength > l4Length))
                    return DropReason.Malformed; // a first fragment holds the start of the datagram only
                if (!p.IsFragment && udpLength < l4Length)
                {
                    if (p.Beyond > 0)
                        return DropReason.Malformed; // a multi-buffer chain is not trimmed: its buffers are sent as they are
                    p.HasUdpTrailer = true; // the kernel accepts it and trims the rest (udp_rcv): so does the pipeline
                    p.UdpLength = udpLength;
                }
                p.Protocol = IpProtocol.Udp;
                p.SrcPort = BinaryPrimitives.ReadUInt16BigEndian(l4);
                p.DstPort = BinaryPrimitives.ReadUInt16BigEndian(l4.Slice(2));
                return DropReason.None;
            case (byte)IpProtocol.Icmp when !p.IsV6:
            case Wire.ProtoIcmpv6 when p.IsV6:
                if (l4.Length < Wire.IcmpEchoHeader)
                    return DropReason.Truncated;
                p.Protocol = IpProtocol.Icmp;
                p.IcmpType = (p.IsV6, l4[0]) switch
                {
                    (false, _) => l4[0],
                    (true, Wire.Icmpv6EchoRequest) => Wire.IcmpEchoRequest,
                    (true, Wire.Icmpv6EchoReply) => Wire.IcmpEchoReply,
                    _ => 255, // NDP, MLD, errors: not echo
                };
                if (p.IsV6 ? l4[0] is Wire.Icmpv6DestUnreachable or Wire.Icmpv6PacketTooBig or Wire.Icmpv6TimeExceeded
                           : l4[0] is Wire.IcmpDestUnreachable or Wire.IcmpTimeExceeded)
                    return ParseQuoted(l4.Slice(Wire.IcmpEchoHeader), ref p);
                if (p.IcmpType is not (Wire.IcmpEchoRequest or Wire.IcmpEchoReply))
                    return DropReason.IcmpNotEcho;
                ushort id = BinaryPrimitives.ReadUInt16BigEndian(l4.Slice(Wire.IcmpId));
                // Requests are keyed by source "port", replies by destination "port": both hold the id.
                p.SrcPort = id;
                p.DstPort = id;
                return DropReason.None;
            default:
                return DropReason.UnsupportedProtocol;
        }
    }

    /// <summary>The packet an ICMP error quotes (after the 8-byte ICMP header): an IP header of the outer
    /// family (IPv6 without extension headers) and at least the first 8 bytes of TCP, UDP or ICMP echo.</summary>
    private static DropReason ParseQuoted(ReadOnlySpan<byte> quote, ref ParsedPacket p)
    {
        int l3 = p.L4Offset + Wire.IcmpEchoHeader;
        int ihl;
        byte protocol;
        if (p.IsV6)
        {
            if (quote.Length < Wire.IPv6Header + 8 || quote[0] >> 4 != 6)
                return DropReason.Truncated;
            ihl = Wire.IPv6Header;
            protocol = quote[Wire.Ip6NextHeader];
            p.InnerSrc = IpAddr.ReadV6(quote.Slice(Wire.Ip6Src));
            p.InnerDst = IpAddr.ReadV6(quote.Slice(Wire.Ip6Dst));
        }
        else
        {
            if (quote.Length < Wire.IPv4MinHeader || quote[0] >> 4 != 4)
                return DropReason.Truncated;
            ihl = (quote[0] & 0x0F) * 4;
            if (ihl < Wire.IPv4MinHeader || quote.Length < ihl + 8)
                return DropReason.Truncated;
            protocol = quote[Wire.IpProto];
            p.InnerSrc = IpAddr.ReadV4(quote.Slice(Wire.IpSrc));
            p.InnerDst = IpAddr.ReadV4(quote.Slice(Wire.IpDst));
        }
        var l4 = quote.Slice(ihl);
        switch (protocol)
        {
            case (byte)IpProtocol.Tcp:
            case (byte)IpProtocol.Udp:
                p.InnerProtocol = (IpProtocol)protocol;
                p.InnerSrcPort = BinaryPrimitives.ReadUInt16BigEndian(l4);
                p.InnerDstPort = BinaryPrimitives.ReadUInt16BigEndian(l4.Slice(2));
                break;
            case (byte)IpProtocol.Icmp when !p.IsV6:
            case Wire.ProtoIcmpv6 when p.IsV6:
                byte type = l4[0];
                if (type is not (Wire.IcmpEchoRequest or Wire.IcmpEchoReply or Wire.Icmpv6EchoRequest or Wire.Icmpv6EchoReply))
                    return DropReason.IcmpNotEcho; // errors about errors are never answered
                p.InnerProtocol = IpProtocol.Icmp;
                p.InnerSrcPort = p.InnerDstPort = BinaryPrimitives.ReadUInt16BigEndian(l4.Slice(Wire.IcmpId));
                break;
            default:
                return DropReason.UnsupportedProtocol;
        }
        p.IsIcmpError = true;
        p.InnerL3Offset = l3;
        p.InnerL4Offset = l3 + ihl;
        p.InnerL4Length = l4.Length;
        return DropReason.None;
    }
}
