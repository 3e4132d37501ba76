using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using ZonLb.Engine.Checksums;
using ZonLb.Engine.Packets;

namespace ZonLb.Engine.Nat;

/// <summary>
/// Full NAT on a frame's bytes: new addresses, ports (or ICMP echo id), one hop less, and every checksum kept
/// right. Pure functions over spans: the pipeline decides what a packet becomes, these write it. Checksums are
/// updated incrementally (RFC 1624) with one sum of what changed: the addresses count the same in the IPv4 header
/// and in the TCP/UDP/ICMPv6 pseudo-header, so their difference (<see cref="AddressDelta"/>) is summed once for both.
/// </summary>
internal static class NatRewriter
{
    /// <summary>The sum of two addresses' 16-bit words, of one family (a connection never mixes them).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong WordSum(bool v6, in IpAddr a, in IpAddr b)
    {
        if (v6)
            return a.WordSum() + b.WordSum();
        uint x = a.V4, y = b.V4;
        return (ulong)(x >> 16) + (x & 0xFFFF) + (y >> 16) + (y & 0xFFFF);
    }

    /// <summary>The one's-complement sum that turns the old addresses' words into the new ones' (RFC 1624: the
    /// complement of each old word plus each new word), from the plain sums of both.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong AddressDelta(bool v6, ulong oldAddresses, ulong newAddresses) =>
        (v6 ? 16 * 0xFFFFUL : 4 * 0xFFFFUL) - oldAddresses + newAddresses;

    /// <summary>New addresses and one hop less in an IP header (ip: from its first byte to the transport header);
    /// IPv4's header checksum updated (IPv6 has none). The incoming header's checksum was verified, so updating it
    /// gives what recomputing would. The transport header is the caller's business.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void RewriteIpHeader(Span<byte> ip, bool v6, in IpAddr newSrc, in IpAddr newDst, ulong addressDelta)
    {
        if (v6)
        {
            newSrc.WriteV6(ip.Slice(Wire.Ip6Src));
            newDst.WriteV6(ip.Slice(Wire.Ip6Dst));
            ip[Wire.Ip6HopLimit]--;
            return;
        }
        BinaryPrimitives.WriteUInt32BigEndian(ip.Slice(Wire.IpSrc), newSrc.V4);
        BinaryPrimitives.WriteUInt32BigEndian(ip.Slice(Wire.IpDst), newDst.V4);
        // TTL is the high byte of the TTL/protocol word: one less TTL is 0x100 less in that word
        ushort ttlWord = BinaryPrimitives.ReadUInt16BigEndian(ip.Slice(Wire.IpTtl));
        ip[Wire.IpTtl]--;
        ushort check = BinaryPrimitives.ReadUInt16BigEndian(ip.Slice(Wire.IpChecksum));
        check = (ushort)~InternetChecksum.Fold((ulong)(ushort)~check + addressDelta + (ushort)~ttlWord + (uint)(ttlWord - 0x100));
        BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(Wire.IpChecksum), check);
    }

    /// <summary>CHECKSUM_PARTIAL from the sender's TX offload: the L4 checksum field holds only the folded
    /// pseudo-header sum of the packet as sent. addressWords: the sum of its source and destination address words
    /// (<see cref="WordSum"/>). Never asked of fragments: the sender's stack computed the whole checksum to
    /// fragment the datagram.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsPartial(ushort check, byte wireProtocol, int l4Length, ulong addressWords) =>
        check == InternetChecksum.Fold(addressWords + wireProtocol + (uint)(l4Length >> 16) + (uint)(l4Length & 0xFFFF));

    /// <summary>The full L4 checksum of a segment for these addresses (the field is zeroed first). l4 is the
    /// segment's part in the first buffer, l4Length the whole segment's length, beyondSum the sum of the rest
    /// (a multi-buffer chain; 0 otherwise).</summary>
    public static ushort CompleteChecksum(Span<byte> l4, int l4Length, ulong beyondSum, int csOff, in IpAddr src, in IpAddr dst, byte wireProtocol)
    {
        BinaryPrimitives.WriteUInt16BigEndian(l4.Slice(csOff), 0);
        ushort data = beyondSum == 0 ? InternetChecksum.Sum(l4) : InternetChecksum.Fold(InternetChecksum.Sum(l4) + beyondSum);
        return InternetChecksum.Finish(InternetChecksum.Add(InternetChecksum.PseudoHeaderSum(src, dst, wireProtocol, l4Length), data));
    }

    /// <summary>New TCP or UDP ports, and the checksum updated for them and for the addresses (addressDelta), or
    /// completed where the sender left it partial and repairPartial allows (oldAddresses: the old addresses' word
    /// sum, to tell). True when a partial checksum was completed.</summary>
    public static bool TranslatePorts(Span<byte> l4, int l4Length, ulong beyondSum, bool udp, bool repairPartial, byte wireProtocol,
        ulong oldAddresses, ulong addressDelta, in IpAddr newSrc, in IpAddr newDst, ushort oldSport, ushort oldDport, ushort newSport, ushort newDport)
    {
        int csOff = udp ? Wire.UdpChecksum : Wire.TcpChecksum;
        ushort check = BinaryPrimitives.ReadUInt16BigEndian(l4.Slice(csOff));
        BinaryPrimitives.WriteUInt16BigEndian(l4, newSport);
        BinaryPrimitives.WriteUInt16BigEndian(l4.Slice(2), newDport);
        if (udp && check == 0)
            return false; // UDP without a checksum stays so
        // (whether the field is partial depends on the addresses and the length only, not on the ports)
        bool repaired = repairPartial && IsPartial(check, wireProtocol, l4Length, oldAddresses);
        if (repaired)
        {
            // nobody downstream will finish a partial checksum: compute the full one now
            check = CompleteChecksum(l4, l4Length, beyondSum, csOff, newSrc, newDst, wireProtocol);
        }
        else
        {
            check = (ushort)~InternetChecksum.Fold((ulong)(ushort)~check + addressDelta +
                (ushort)~oldSport + newSport + (ushort)~oldDport + newDport);
        }
        if (udp && check == 0)
            check = 0xFFFF; // 0 means "no checksum" in UDP
        BinaryPrimitives.WriteUInt16BigEndian(l4.Slice(csOff), check);
        return repaired;
    }

    /// <summary>An ICMP echo's new identifier (the id plays the port). The ICMPv4 checksum covers no pseudo-header;
    /// ICMPv6's does, so it takes the addresses' delta too.</summary>
    public static void TranslateEchoId(Span<byte> icmp, ushort newId, bool v6, ulong addressDelta)
    {
        ushort oldId = BinaryPrimitives.ReadUInt16BigEndian(icmp.Slice(Wire.IcmpId));
        ushort check = BinaryPrimitives.ReadUInt16BigEndian(icmp.Slice(Wire.IcmpChecksum));
        check = (ushort)~InternetChecksum.Fold((ulong)(ushort)~check + (ushort)~oldId + newId + (v6 ? addressDelta : 0));
        BinaryPrimitives.WriteUInt16BigEndian(icmp.Slice(Wire.IcmpId), newId);
        BinaryPrimitives.WriteUInt16BigEndian(icmp.Slice(Wire.IcmpChecksum), check);
    }

    /// <summary>
    /// The packet an ICMP error quotes (inner: from its IP header to the end of what is quoted, ipHeader bytes of
    /// header), rewritten to new addresses and ports (an echo: its id, in sport): its L4 checksum where it is quoted
    /// (not a UDP checksum of 0), and its IPv4 header checksum recomputed.
    /// </summary>
    public static void TranslateQuoted(Span<byte> inner, int ipHeader, bool v6, IpProtocol protocol,
        in IpAddr oldSrc, in IpAddr oldDst, ushort oldSport, ushort oldDport,
        in IpAddr newSrc, in IpAddr newDst, ushort newSport, ushort newDport)
    {
        var l4 = inner.Slice(ipHeader);
        bool echo = protocol == IpProtocol.Icmp;
        int csOff = protocol switch { IpProtocol.Tcp => Wire.TcpChecksum, IpProtocol.Udp => Wire.UdpChecksum, _ => Wire.IcmpChecksum };
        if (l4.Length >= csOff + 2)
        {
            ushort check = BinaryPrimitives.ReadUInt16BigEndian(l4.Slice(csOff));
            if (!(protocol == IpProtocol.Udp && check == 0))
            {
                if (!echo || v6)
                {
                    check = InternetChecksum.UpdateAddress(check, oldSrc, newSrc);
                    check = InternetChecksum.UpdateAddress(check, oldDst, newDst);
                }
                check = InternetChecksum.Update16(check, oldSport, newSport);
                if (!echo)
                    check = InternetChecksum.Update16(check, oldDport, newDport);
                BinaryPrimitives.WriteUInt16BigEndian(l4.Slice(csOff), check);
            }
        }
        if (echo)
        {
            BinaryPrimitives.WriteUInt16BigEndian(l4.Slice(Wire.IcmpId), newSport);
        }
        else
        {
            BinaryPrimitives.WriteUInt16BigEndian(l4, newSport);
            BinaryPrimitives.WriteUInt16BigEndian(l4.Slice(2), newDport);
        }
        if (v6)
        {
            newSrc.WriteV6(inner.Slice(Wire.Ip6Src));
            newDst.WriteV6(inner.Slice(Wire.Ip6Dst));
        }
        else
        {
            BinaryPrimitives.WriteUInt32BigEndian(inner.Slice(Wire.IpSrc), newSrc.V4);
            BinaryPrimitives.WriteUInt32BigEndian(inner.Slice(Wire.IpDst), newDst.V4);
            BinaryPrimitives.WriteUInt16BigEndian(inner.Slice(Wire.IpChecksum), InternetChecksum.IPv4Header(inner.Slice(0, ipHeader)));
        }
    }

    /// <summary>Whether an ICMP message's checksum is right (ICMPv6: over the pseudo-header of its addresses too).</summary>
    public static bool IcmpChecksumIsValid(ReadOnlySpan<byte> icmp, bool v6, in IpAddr src, in IpAddr dst)
    {
        ushort sum = InternetChecksum.Sum(icmp);
        if (v6)
            sum = InternetChecksum.Add(sum, InternetChecksum.PseudoHeaderSum(src, dst, Wire.ProtoIcmpv6, icmp.Length));
        return sum == 0xFFFF;
    }

    /// <summary>An ICMP message's checksum over the whole message, computed again after its quoted packet changed
    /// (ICMPv6: with the pseudo-header of its new addresses).</summary>
    public static void RecomputeIcmpChecksum(Span<byte> icmp, bool v6, in IpAddr src, in IpAddr dst)
    {
        BinaryPrimitives.WriteUInt16BigEndian(icmp.Slice(Wire.IcmpChecksum), 0);
        ushort sum = InternetChecksum.Sum(icmp);
        if (v6)
            sum = InternetChecksum.Add(sum, InternetChecksum.PseudoHeaderSum(src, dst, Wire.ProtoIcmpv6, icmp.Length));
        BinaryPrimitives.WriteUInt16BigEndian(icmp.Slice(Wire.IcmpChecksum), InternetChecksum.Finish(sum));
    }
}
