using System.Buffers.Binary;
using ZonLb.Engine.Checksums;

namespace ZonLb.Engine.Packets;

/// <summary>ICMP errors the load balancer sends as a router would.</summary>
public static class IcmpErrors
{
    public const byte TimeExceeded = 11;

    /// <summary>
    /// Rewrites, in place, a received IPv4 frame whose TTL ran out into an ICMP time-exceeded message back to
    /// its sender: from <paramref name="fromIp"/> and <paramref name="fromMac"/> (the interface it came in on),
    /// to the sender's MAC and address, quoting the original IP header and the first 8 bytes of its payload.
    /// A VLAN tag is kept. <paramref name="frame"/> must have room for the result (up to 18 + 20 + 8 + 68 bytes);
    /// returns the new frame length, or 0 when the original is not an IPv4 frame it can answer.
    /// </summary>
    public static int BuildTimeExceeded(Span<byte> frame, int originalLength, uint fromIp, ReadOnlySpan<byte> fromMac)
    {
        if (originalLength < 14 + 20 || frame.Length < 18 + 20 + 8 + 68 || fromMac.Length != 6)
            return 0;
        int l3 = BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(12)) == 0x8100 ? 18 : 14;
        if (originalLength < l3 + 20 || BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(l3 - 2)) != 0x0800)
            return 0;
        int ihl = (frame[l3] & 0x0F) * 4;
        if (frame[l3] >> 4 != 4 || ihl < 20 || originalLength < l3 + ihl)
            return 0;
        uint senderIp = BinaryPrimitives.ReadUInt32BigEndian(frame.Slice(l3 + 12));
        int quoted = Math.Min(ihl + 8, originalLength - l3);
        Span<byte> quote = stackalloc byte[68];
        frame.Slice(l3, quoted).CopyTo(quote);

        // Ethernet: back to the sender, from us (a VLAN tag stays where it is)
        Span<byte> senderMac = stackalloc byte[6];
        frame.Slice(6, 6).CopyTo(senderMac);
        senderMac.CopyTo(frame);
        fromMac.CopyTo(frame.Slice(6, 6));

        var ip = frame.Slice(l3, 20);
        int total = 20 + 8 + quoted;
        ip.Clear();
        ip[0] = 0x45;
        ip[1] = 0xC0; // internetwork control, as routers send their ICMP
        BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(2), (ushort)total);
        ip[8] = 64;
        ip[9] = 1;
        BinaryPrimitives.WriteUInt32BigEndian(ip.Slice(12), fromIp);
        BinaryPrimitives.WriteUInt32BigEndian(ip.Slice(16), senderIp);
        BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(10), InternetChecksum.IPv4Header(ip));

        var icmp = frame.Slice(l3 + 20, 8 + quoted);
        icmp.Slice(0, 8).Clear();
        icmp[0] = TimeExceeded; // code 0: TTL exceeded in transit
        quote.Slice(0, quoted).CopyTo(icmp.Slice(8));
        BinaryPrimitives.WriteUInt16BigEndian(icmp.Slice(2), InternetChecksum.Finish(InternetChecksum.Sum(icmp)));
        return l3 + total;
    }
}
