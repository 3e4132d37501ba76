using ZonLb.Engine.Counters;
using ZonLb.Engine.Packets;
using ZonLb.Testing;
using static ZonLb.Testing.PacketBuilder;

namespace ZonLb.UnitTests;

public class PacketParserTests
{
    [Fact]
    public void Tcp_fields_are_read_from_the_frame()
    {
        var frame = Tcp("10.10.0.2", 40000, "10.10.0.1", 80).TcpFlags(0x02).Ttl(9).Payload(5).Build();
        Assert.Equal(DropReason.None, PacketParser.Parse(frame, out var p));
        Assert.Equal(IpProtocol.Tcp, p.Protocol);
        Assert.Equal(IpAddr.FromV4(0x0A0A0002), p.SrcIp);
        Assert.Equal(IpAddr.FromV4(0x0A0A0001), p.DstIp);
        Assert.Equal(40000, p.SrcPort);
        Assert.Equal(80, p.DstPort);
        Assert.Equal(9, p.Ttl);
        Assert.Equal(0x02, p.TcpFlags);
        Assert.Equal(14, p.L3Offset);
        Assert.Equal(34, p.L4Offset);
        Assert.Equal(25, p.L4Length);
    }

    [Fact]
    public void Udp_fields_are_read_from_the_frame()
    {
        var frame = Udp("1.2.3.4", 5, "6.7.8.9", 53).Payload(3).Build();
        Assert.Equal(DropReason.None, PacketParser.Parse(frame, out var p));
        Assert.Equal(IpProtocol.Udp, p.Protocol);
        Assert.Equal(5, p.SrcPort);
        Assert.Equal(53, p.DstPort);
        Assert.Equal(11, p.L4Length);
    }

    [Fact]
    public void Icmp_echo_id_is_read_as_both_ports()
    {
        var frame = IcmpEcho("1.2.3.4", "6.7.8.9", 777).Build();
        Assert.Equal(DropReason.None, PacketParser.Parse(frame, out var p));
        Assert.Equal(IpProtocol.Icmp, p.Protocol);
        Assert.Equal(8, p.IcmpType);
        Assert.Equal(777, p.SrcPort);
        Assert.Equal(777, p.DstPort);
    }

    [Fact]
    public void A_vlan_tag_moves_the_ip_header_by_four_bytes()
    {
        var frame = Tcp("10.10.0.2", 1, "10.10.0.1", 80).Vlan(7).Build();
        Assert.Equal(DropReason.None, PacketParser.Parse(frame, out var p));
        Assert.Equal(18, p.L3Offset);
        Assert.Equal(80, p.DstPort);
    }

    [Fact]
    public void Every_truncation_of_a_valid_frame_is_rejected_without_throwing()
    {
        foreach (var full in new[]
                 {
                     Tcp("10.10.0.2", 1, "10.10.0.1", 80).Payload(10).Build(),
                     Udp("10.10.0.2", 1, "10.10.0.1", 53).Payload(10).Build(),
                     IcmpEcho("10.10.0.2", "10.10.0.1", 1).Payload(10).Build(),
                     Tcp("10.10.0.2", 1, "10.10.0.1", 80).Vlan(3).Build(),
                 })
        {
            for (int len = 0; len < full.Length; len++)
                Assert.NotEqual(DropReason.None, PacketParser.Parse(full.AsSpan(0, len), out _));
        }
    }

    [Fact]
    public void Ethernet_padding_after_the_ip_datagram_is_ignored()
    {
        var frame = Udp("10.10.0.2", 1, "10.10.0.1", 53).Build();
        var padded = new byte[64];
        frame.CopyTo(padded, 0);
        Assert.Equal(DropReason.None, PacketParser.Parse(padded, out var p));
        Assert.Equal(8, p.L4Length);
    }

    [Fact]
    public void Frames_that_are_neither_ipv4_nor_ipv6_are_reported_as_such()
    {
        var frame = Tcp("10.10.0.2", 1, "10.10.0.1", 80).Build();
        frame[12] = 0x08; frame[13] = 0x06; // ARP
        Assert.Equal(DropReason.NotIp, PacketParser.Parse(frame, out _));
    }

    [Fact]
    public void A_first_fragment_is_parsed_with_its_ports_and_marked()
    {
        var frame = Udp("10.10.0.2", 1, "10.10.0.1", 53).Payload(100).Build();
        frame[14 + 6] |= 0x20; // more fragments
        frame[14 + 4] = 0x12; frame[14 + 5] = 0x34; // identification
        Assert.Equal(DropReason.None, PacketParser.Parse(frame, out var p));
        Assert.Equal((true, false, 0x1234u, (ushort)53), (p.IsFragment, p.IsLaterFragment, p.FragmentId, p.DstPort));
    }

    [Fact]
    public void A_later_fragment_has_a_protocol_but_no_ports()
    {
        var frame = Udp("10.10.0.2", 1, "10.10.0.1", 53).Payload(100).Build();
        frame[14 + 7] = 185; // offset 1480
        Assert.Equal(DropReason.None, PacketParser.Parse(frame, out var p));
        Assert.Equal((true, true, IpProtocol.Udp, (ushort)0), (p.IsFragment, p.IsLaterFragment, p.Protocol, p.DstPort));
    }

    [Theory]
    [InlineData(0x44)] // IHL 4 words: shorter than the minimum
    [InlineData(0x4F)] // IHL 15 words: past the end of this datagram
    [InlineData(0x65)] // version 6 in an IPv4 ethertype
    public void A_bad_version_or_header_length_is_malformed(byte versionIhl)
    {
        var frame = Tcp("10.10.0.2", 1, "10.10.0.1", 80).Build();
        frame[14] = versionIhl;
        Assert.Equal(DropReason.Malformed, PacketParser.Parse(frame, out _));
    }

    [Fact]
    public void A_tcp_data_offset_past_the_segment_is_malformed()
    {
        var frame = Tcp("10.10.0.2", 1, "10.10.0.1", 80).Build();
        frame[34 + 12] = 0xF0;
        Assert.Equal(DropReason.Malformed, PacketParser.Parse(frame, out _));
    }

    [Fact]
    public void Icmp_other_than_echo_is_reported_as_such()
    {
        var frame = IcmpEcho("10.10.0.2", "10.10.0.1", 1).Build();
        frame[34] = 13; // timestamp request
        Assert.Equal(DropReason.IcmpNotEcho, PacketParser.Parse(frame, out _));
    }

    [Fact]
    public void An_icmp_error_too_short_to_quote_a_packet_is_truncated()
    {
        var frame = IcmpEcho("10.10.0.2", "10.10.0.1", 1).Build();
        frame[34] = 3; // destination unreachable, quoting nothing
        Assert.Equal(DropReason.Truncated, PacketParser.Parse(frame, out _));
    }

    [Fact]
    public void Random_bytes_never_make_the_parser_throw()
    {
        var rng = new Random(42);
        var good = Tcp("10.10.0.2", 1, "10.10.0.1", 80).Payload(40).Build();
        for (int i = 0; i < 20000; i++)
        {
            var frame = (byte[])good.Clone();
            for (int k = rng.Next(1, 6); k > 0; k--)
                frame[rng.Next(frame.Length)] = (byte)rng.Next(256);
            PacketParser.Parse(frame.AsSpan(0, rng.Next(frame.Length + 1)), out _);
        }
    }
}
