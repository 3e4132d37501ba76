using System.Buffers.Binary;
using PacketDotNet;
using ZonLb.Testing;
using static ZonLb.Testing.PacketBuilder;

namespace ZonLb.UnitTests;

/// <summary>The test frame builder is itself tested, so the golden frames mean what they say.</summary>
public class PacketBuilderTests
{
    [Fact]
    public void Valid_frames_pass_PacketDotNet_checksum_checks()
    {
        var tcp = ParseIPv4(Tcp("1.1.1.1", 1, "2.2.2.2", 2).Payload(33).Build());
        Assert.True(tcp.ValidIPChecksum);
        Assert.True(tcp.Extract<TcpPacket>().ValidTcpChecksum);
        var udp = ParseIPv4(Udp("1.1.1.1", 1, "2.2.2.2", 2).Payload(33).Build());
        Assert.True(udp.Extract<UdpPacket>().ValidUdpChecksum);
        var icmp = ParseIPv4(IcmpEcho("1.1.1.1", "2.2.2.2", 9).Payload(33).Build());
        Assert.True(icmp.Extract<IcmpV4Packet>().ValidIcmpChecksum);
    }

    [Fact]
    public void A_tcp_segment_carries_the_sequence_number_asked_for()
    {
        Assert.Equal(1000u, ParseIPv4(Tcp("1.1.1.1", 1, "2.2.2.2", 2).Build()).Extract<TcpPacket>().SequenceNumber);
        Assert.Equal(0xFFFFFFF0u, ParseIPv4(Tcp("1.1.1.1", 1, "2.2.2.2", 2).Seq(0xFFFFFFF0).Build()).Extract<TcpPacket>().SequenceNumber);
    }

    [Fact]
    public void Partial_and_wrong_checksums_fail_PacketDotNet_checks()
    {
        Assert.False(ParseIPv4(Tcp("1.1.1.1", 1, "2.2.2.2", 2).Payload(10).Checksum(ChecksumKind.Partial).Build()).Extract<TcpPacket>().ValidTcpChecksum);
        Assert.False(ParseIPv4(Tcp("1.1.1.1", 1, "2.2.2.2", 2).Payload(10).Checksum(ChecksumKind.Wrong).Build()).Extract<TcpPacket>().ValidTcpChecksum);
    }

    [Fact]
    public void A_partial_checksum_holds_the_pseudo_header_sum()
    {
        // 1.1.1.1 + 2.2.2.2 + proto 6 + length 20: 0x0101+0x0101+0x0202+0x0202+0x0006+0x0014 = 0x0620
        var frame = Tcp("1.1.1.1", 1, "2.2.2.2", 2).Checksum(ChecksumKind.Partial).Build();
        Assert.Equal(0x0620, BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(34 + 16)));
    }
}
