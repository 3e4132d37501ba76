namespace ZonLb.Engine.Packets;

/// <summary>IP protocol numbers the engine handles.</summary>
public enum IpProtocol : byte
{
    Icmp = 1,
    Tcp = 6,
    Udp = 17,
}

/// <summary>Header constants, one place.</summary>
internal static class Wire
{
    public const int EthernetHeader = 14;
    public const int VlanTag = 4;
    public const ushort EtherTypeIPv4 = 0x0800;
    public const ushort EtherTypeVlan = 0x8100;
    public const int IPv4MinHeader = 20;
    public const int TcpMinHeader = 20;
    public const int UdpHeader = 8;
    public const int IcmpEchoHeader = 8;
    public const byte IcmpEchoReply = 0;
    public const byte IcmpEchoRequest = 8;

    // offsets inside the IPv4 header
    public const int IpTtl = 8, IpProto = 9, IpChecksum = 10, IpSrc = 12, IpDst = 16, IpTotalLength = 2, IpFragment = 6;
    // offsets of the checksum field inside L4 headers
    public const int TcpChecksum = 16, UdpChecksum = 6, IcmpChecksum = 2, IcmpId = 4;
    public const int TcpFlags = 13;
    public const byte TcpFin = 0x01, TcpSyn = 0x02, TcpRst = 0x04;
}
