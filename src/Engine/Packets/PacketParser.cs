using System.Buffers.Binary;
using ZonLb.Engine.Counters;

namespace ZonLb.Engine.Packets;

/// <summary>
/// What the engine needs to know of a frame: where its headers are and its flow fields. Addresses are
/// host-order numbers of the network-order fields; ports for ICMP echo hold the identifier.
/// </summary>
public struct ParsedPacket
{
    public int L3Offset;
    public int L4Offset;
    /// <summary>IP total length: the frame may be longer (Ethernet padding); it never is shorter.</summary>
    public int IpTotalLength;
    public IpProtocol Protocol;
    public uint SrcIp;
    public uint DstIp;
    public ushort SrcPort;
    public ushort DstPort;
    public byte Ttl;
    public byte IcmpType;
    public byte TcpFlags;

    public readonly int L4Length => L3Offset + IpTotalLength - L4Offset;
}

/// <summary>
/// Parses Ethernet (with at most one 802.1Q tag), IPv4 and the TCP/UDP/ICMP-echo header, checking bounds once
/// per header. Never throws: a frame it cannot use yields a <see cref="DropReason"/>.
/// </summary>
public static class PacketParser
{
    public static DropReason Parse(ReadOnlySpan<byte> frame, out ParsedPacket p)
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
            l3 += Wire.VlanTag;
        }
        if (etherType != Wire.EtherTypeIPv4)
            return DropReason.NotIPv4;

        var ip = frame.Slice(l3);
        if (ip.Length < Wire.IPv4MinHeader)
            return DropReason.Truncated;
        if (ip[0] >> 4 != 4)
            return DropReason.Malformed;
        int ihl = (ip[0] & 0x0F) * 4;
        int total = BinaryPrimitives.ReadUInt16BigEndian(ip.Slice(Wire.IpTotalLength));
        if (ihl < Wire.IPv4MinHeader || total < ihl || total > ip.Length)
            return DropReason.Malformed;
        if ((BinaryPrimitives.ReadUInt16BigEndian(ip.Slice(Wire.IpFragment)) & 0x3FFF) != 0)
            return DropReason.Fragment; // MF set or offset non-zero

        p.L3Offset = l3;
        p.L4Offset = l3 + ihl;
        p.IpTotalLength = total;
        p.Ttl = ip[Wire.IpTtl];
        p.SrcIp = BinaryPrimitives.ReadUInt32BigEndian(ip.Slice(Wire.IpSrc));
        p.DstIp = BinaryPrimitives.ReadUInt32BigEndian(ip.Slice(Wire.IpDst));
        var l4 = ip.Slice(ihl, total - ihl);
        switch (ip[Wire.IpProto])
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
                if (udpLength != l4.Length)
                    return DropReason.Malformed;
                p.Protocol = IpProtocol.Udp;
                p.SrcPort = BinaryPrimitives.ReadUInt16BigEndian(l4);
                p.DstPort = BinaryPrimitives.ReadUInt16BigEndian(l4.Slice(2));
                return DropReason.None;
            case (byte)IpProtocol.Icmp:
                if (l4.Length < Wire.IcmpEchoHeader)
                    return DropReason.Truncated;
                p.Protocol = IpProtocol.Icmp;
                p.IcmpType = l4[0];
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
}
