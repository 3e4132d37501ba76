using System.Buffers.Binary;
using ZonLb.Engine.Checksums;

namespace ZonLb.Engine.Packets;

/// <summary>
/// A TCP reset that ends a backend's TIME_WAIT on a tuple a new connection is about to take (the NAT port of a
/// closed connection, given to a new client): built from the new connection's translated SYN (its Ethernet and IP
/// headers, addresses and ports), with the sequence number the backend's TIME_WAIT expects (the old client's FIN,
/// plus one) and no options. Linux drops a TIME_WAIT socket on such a reset (net.ipv4.tcp_rfc1337 = 0, its
/// default); without it, the new SYN would meet the old connection's TIME_WAIT, whose timestamp check (PAWS)
/// refuses it half the time (the client's timestamps of the new connection are unrelated to the old one's), and the
/// client would wait a second to send its SYN again.
/// </summary>
internal static class TimeWaitReset
{
    /// <summary>Writes into <paramref name="into"/> a RST from the SYN's source to its destination with sequence
    /// number <paramref name="seq"/>; returns its length, or 0 when the SYN is not an untagged or single-tagged TCP
    /// packet over IPv4 or IPv6 or <paramref name="into"/> is too small.</summary>
    public static int Build(ReadOnlySpan<byte> syn, uint seq, Span<byte> into)
    {
        int l3 = syn.Length >= 18 && syn[12] == 0x81 && syn[13] == 0x00 ? 18 : 14;
        if (syn.Length < l3 + Wire.IPv4MinHeader)
            return 0;
        bool v6 = syn[l3] >> 4 == 6;
        int ipHeader = v6 ? Wire.IPv6Header : (syn[l3] & 0x0F) * 4;
        if (v6 ? syn[l3 + Wire.Ip6NextHeader] != (byte)IpProtocol.Tcp : syn[l3 + Wire.IpProto] != (byte)IpProtocol.Tcp)
            return 0;
        int length = l3 + (v6 ? Wire.IPv6Header : Wire.IPv4MinHeader) + Wire.TcpMinHeader;
        if (syn.Length < l3 + ipHeader + 4 || into.Length < length)
            return 0;
        syn.Slice(0, l3).CopyTo(into); // MACs, VLAN tag, EtherType
        var ip = into.Slice(l3);
        if (v6)
        {
            syn.Slice(l3, Wire.IPv6Header).CopyTo(ip);
            BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(Wire.Ip6PayloadLength), Wire.TcpMinHeader);
        }
        else
        {
            syn.Slice(l3, Wire.IPv4MinHeader).CopyTo(ip);
            ip[0] = 0x45; // no options
            BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(2), Wire.IPv4MinHeader + Wire.TcpMinHeader);
            BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(4), 0); // id
            BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(Wire.IpFragment), 0x4000); // DF
            BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(Wire.IpChecksum), 0);
            BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(Wire.IpChecksum), InternetChecksum.IPv4Header(ip.Slice(0, Wire.IPv4MinHeader)));
        }
        int ipLength = v6 ? Wire.IPv6Header : Wire.IPv4MinHeader;
        var tcp = ip.Slice(ipLength, Wire.TcpMinHeader);
        tcp.Clear();
        syn.Slice(l3 + ipHeader, 4).CopyTo(tcp); // the ports
        BinaryPrimitives.WriteUInt32BigEndian(tcp.Slice(4), seq);
        tcp[12] = (Wire.TcpMinHeader / 4) << 4;
        tcp[Wire.TcpFlags] = Wire.TcpRst;
        var src = v6 ? IpAddr.ReadV6(ip.Slice(Wire.Ip6Src)) : IpAddr.ReadV4(ip.Slice(Wire.IpSrc));
        var dst = v6 ? IpAddr.ReadV6(ip.Slice(Wire.Ip6Dst)) : IpAddr.ReadV4(ip.Slice(Wire.IpDst));
        ushort pseudo = InternetChecksum.PseudoHeaderSum(src, dst, (byte)IpProtocol.Tcp, Wire.TcpMinHeader);
        ushort sum = InternetChecksum.Add(pseudo, InternetChecksum.Sum(tcp));
        BinaryPrimitives.WriteUInt16BigEndian(tcp.Slice(Wire.TcpChecksum), InternetChecksum.Finish(sum));
        return l3 + ipLength + Wire.TcpMinHeader;
    }
}
