using System.Buffers.Binary;
using ZonLb.Engine.Checksums;

namespace ZonLb.Engine.Packets;

/// <summary>ICMP errors the load balancer sends as a router would.</summary>
internal static class IcmpErrors
{
    public const byte TimeExceeded = 11;

    public const byte Icmpv6TimeExceeded = 3;

    /// <summary>
    /// Rewrites, in place, a received frame whose TTL (IPv4) or hop limit (IPv6) ran out into an ICMP or ICMPv6
    /// time-exceeded message back to its sender: from the interface it came in on (<paramref name="fromV4"/> or
    /// <paramref name="fromV6"/>, and <paramref name="fromMac"/>), to the sender's MAC and address. IPv4 quotes
    /// the original IP header and 8 bytes of payload; IPv6 as much of the original as fits in 1280 bytes
    /// (RFC 4443). A VLAN tag is kept. <paramref name="frame"/> is the whole buffer the frame lies at the start
    /// of; returns the new frame length, or 0 when there is nothing to answer with (no source address of the
    /// family, not IP, no room).
    /// </summary>
    public static int BuildTimeExceeded(Span<byte> frame, int originalLength, in IpAddr fromV4, in IpAddr fromV6, ReadOnlySpan<byte> fromMac) =>
        Build(frame, originalLength, 0, fromV4, fromV6, fromMac);

    /// <summary>Like <see cref="BuildTimeExceeded"/>, but ICMP destination unreachable / fragmentation needed
    /// (IPv4) or ICMPv6 packet too big, carrying the next hop's <paramref name="mtu"/>.</summary>
    public static int BuildTooBig(Span<byte> frame, int originalLength, int mtu, in IpAddr fromV4, in IpAddr fromV6, ReadOnlySpan<byte> fromMac) =>
        Build(frame, originalLength, mtu, fromV4, fromV6, fromMac);

    /// <summary>mtu 0: time exceeded; otherwise fragmentation needed / packet too big with that MTU.</summary>
    private static int Build(Span<byte> frame, int originalLength, int mtu, in IpAddr fromV4, in IpAddr fromV6, ReadOnlySpan<byte> fromMac)
    {
        if (originalLength < 14 + 20 || frame.Length < originalLength || fromMac.Length != 6)
            return 0;
        int l3 = BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(12)) == Wire.EtherTypeVlan ? 18 : 14;
        ushort etherType = BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(l3 - 2));
        if (etherType == Wire.EtherTypeIPv6)
            return fromV6.IsUnspecified ? 0 : BuildV6(frame, originalLength, l3, mtu, fromV6, fromMac);
        if (etherType != Wire.EtherTypeIPv4 || fromV4.IsUnspecified || frame.Length < 18 + 20 + 8 + 68 || originalLength < l3 + 20)
            return 0;
        int ihl = (frame[l3] & 0x0F) * 4;
        if (frame[l3] >> 4 != 4 || ihl < 20 || originalLength < l3 + ihl)
            return 0;
        uint senderIp = BinaryPrimitives.ReadUInt32BigEndian(frame.Slice(l3 + 12));
        int quoted = Math.Min(ihl + 8, originalLength - l3);
        Span<byte> quote = stackalloc byte[68];
        frame.Slice(l3, quoted).CopyTo(quote);
        BackToSender(frame, fromMac);

        var ip = frame.Slice(l3, 20);
        int total = 20 + 8 + quoted;
        ip.Clear();
        ip[0] = 0x45;
        ip[1] = 0xC0; // internetwork control, as routers send their ICMP
        BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(2), (ushort)total);
        ip[8] = 64;
        ip[9] = 1;
        BinaryPrimitives.WriteUInt32BigEndian(ip.Slice(12), fromV4.V4);
        BinaryPrimitives.WriteUInt32BigEndian(ip.Slice(16), senderIp);
        BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(10), InternetChecksum.IPv4Header(ip));

        var icmp = frame.Slice(l3 + 20, 8 + quoted);
        icmp.Slice(0, 8).Clear();
        if (mtu == 0)
        {
            icmp[0] = TimeExceeded; // code 0: TTL exceeded in transit
        }
        else
        {
            icmp[0] = Wire.IcmpDestUnreachable;
            icmp[1] = Wire.IcmpFragNeededCode;
            BinaryPrimitives.WriteUInt16BigEndian(icmp.Slice(6), (ushort)mtu); // next-hop MTU (RFC 1191)
        }
        quote.Slice(0, quoted).CopyTo(icmp.Slice(8));
        BinaryPrimitives.WriteUInt16BigEndian(icmp.Slice(2), InternetChecksum.Finish(InternetChecksum.Sum(icmp)));
        return l3 + total;
    }

    private static int BuildV6(Span<byte> frame, int originalLength, int l3, int mtu, in IpAddr from, ReadOnlySpan<byte> fromMac)
    {
        const int MinMtu = 1280, Header = Wire.IPv6Header + 8;
        if (originalLength < l3 + Wire.IPv6Header || frame[l3] >> 4 != 6)
            return 0;
        var sender = IpAddr.ReadV6(frame.Slice(l3 + Wire.Ip6Src));
        int quoted = Math.Min(Math.Min(originalLength - l3, MinMtu - Header), frame.Length - l3 - Header);
        if (quoted < Wire.IPv6Header)
            return 0;
        frame.Slice(l3, quoted).CopyTo(frame.Slice(l3 + Header)); // overlapping: a memmove
        BackToSender(frame, fromMac);

        var ip = frame.Slice(l3, Wire.IPv6Header);
        ip.Clear();
        ip[0] = 0x60;
        BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(Wire.Ip6PayloadLength), (ushort)(8 + quoted));
        ip[Wire.Ip6NextHeader] = Wire.ProtoIcmpv6;
        ip[Wire.Ip6HopLimit] = 64;
        from.WriteV6(ip.Slice(Wire.Ip6Src));
        sender.WriteV6(ip.Slice(Wire.Ip6Dst));

        var icmp = frame.Slice(l3 + Wire.IPv6Header, 8 + quoted);
        icmp.Slice(0, 8).Clear();
        if (mtu == 0)
        {
            icmp[0] = Icmpv6TimeExceeded; // code 0: hop limit exceeded in transit
        }
        else
        {
            icmp[0] = Wire.Icmpv6PacketTooBig;
            BinaryPrimitives.WriteUInt32BigEndian(icmp.Slice(4), (uint)mtu);
        }
        ushort sum = InternetChecksum.Add(InternetChecksum.PseudoHeaderSum(from, sender, Wire.ProtoIcmpv6, icmp.Length), InternetChecksum.Sum(icmp));
        BinaryPrimitives.WriteUInt16BigEndian(icmp.Slice(2), InternetChecksum.Finish(sum));
        return l3 + Header + quoted;
    }

    /// <summary>Ethernet: back to the sender, from us (a VLAN tag stays where it is).</summary>
    private static void BackToSender(Span<byte> frame, ReadOnlySpan<byte> fromMac)
    {
        Span<byte> senderMac = stackalloc byte[6];
        frame.Slice(6, 6).CopyTo(senderMac);
        senderMac.CopyTo(frame);
        fromMac.CopyTo(frame.Slice(6, 6));
    }
}
