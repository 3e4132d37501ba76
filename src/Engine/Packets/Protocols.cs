namespace ZonLb.Engine.Packets;

/// <summary>IP protocol numbers the engine handles.</summary>
public enum IpProtocol : byte
{
    /// <summary>ICMP echo (ICMPv6 echo over IPv6).</summary>
    Icmp = 1,
    /// <summary>TCP.</summary>
    Tcp = 6,
    /// <summary>UDP.</summary>
    Udp = 17,
}

internal static class IpProtocolExtensions
{
    /// <summary>The protocol number packets of this protocol carry toward an address of
    /// <paramref name="family"/>'s family: ICMP echo is ICMPv6 (58) over IPv6.</summary>
    public static byte WireNumber(this IpProtocol p, in IpAddr family) =>
        p == IpProtocol.Icmp && !family.IsV4 ? Wire.ProtoIcmpv6 : (byte)p;
}

/// <summary>Header constants, one place.</summary>
internal static class Wire
{
    public const int EthernetHeader = 14;
    public const int VlanTag = 4;
    public const ushort EtherTypeIPv4 = 0x0800;
    public const ushort EtherTypeIPv6 = 0x86DD;
    public const ushort EtherTypeVlan = 0x8100;
    public const int IPv4MinHeader = 20;
    public const int TcpMinHeader = 20;
    public const int UdpHeader = 8;
    public const int IcmpEchoHeader = 8;
    public const byte IcmpEchoReply = 0;
    public const byte IcmpEchoRequest = 8;
    public const byte Icmpv6EchoRequest = 128;
    public const byte Icmpv6EchoReply = 129;
    public const byte ProtoIcmpv6 = 58;
    // ICMP errors the engine translates for tracked connections
    public const byte IcmpDestUnreachable = 3, IcmpTimeExceeded = 11, IcmpFragNeededCode = 4;
    public const byte Icmpv6DestUnreachable = 1, Icmpv6PacketTooBig = 2, Icmpv6TimeExceeded = 3;

    // IPv6: fixed header, offsets inside it, extension headers walked to find the transport header
    public const int IPv6Header = 40;
    public const int Ip6PayloadLength = 4, Ip6NextHeader = 6, Ip6HopLimit = 7, Ip6Src = 8, Ip6Dst = 24;
    public const byte Ip6HopByHop = 0, Ip6Routing = 43, Ip6Fragment = 44, Ip6DestOptions = 60, Ip6Auth = 51;
    /// <summary>Most extension headers a packet may carry before the parser gives up (RFC 8200 order has 6).</summary>
    public const int Ip6MaxExtensionHeaders = 8;

    // offsets inside the IPv4 header
    public const int IpTtl = 8, IpProto = 9, IpChecksum = 10, IpSrc = 12, IpDst = 16, IpTotalLength = 2, IpId = 4, IpFragment = 6;
    // offsets of the checksum field inside L4 headers
    public const int TcpChecksum = 16, UdpChecksum = 6, IcmpChecksum = 2, IcmpId = 4;
    public const int TcpFlags = 13;
    public const byte TcpFin = 0x01, TcpSyn = 0x02, TcpRst = 0x04;
}
