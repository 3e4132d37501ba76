using PacketDotNet;
using ZonLb.Engine.Checksums;
using ZonLb.Engine.Counters;
using ZonLb.Engine.Packets;
using ZonLb.Engine.Pipeline;
using ZonLb.Engine.Services;
using ZonLb.PipelineTesting;
using ZonLb.Testing;
using static ZonLb.Testing.PacketBuilder;
using static ZonLb.UnitTests.TestTopology;

namespace ZonLb.UnitTests;

/// <summary>
/// A jumbo frame as multi-buffer sockets deliver it: its first buffer (all headers) parsed knowing how many
/// bytes follow in the others, translated in place, its partial checksum completed from the first buffer and the
/// others' sums; the buffers put back together must be the packet PacketDotNet finds valid.
/// </summary>
public class MultiBufferFrameTests
{
    private readonly FixedRoutes _routes = Routes();

    private PacketProcessor Processor()
    {
        var snat = IpAddr.FromV4(0x0A140001);
        var services = new[]
        {
            new ResolvedService("web", IpAddr.FromV4(0x0A0A0001), IpProtocol.Tcp, 80, new[] { new ResolvedBackend(IpAddr.FromV4(0x0A140002), 8080, snat) }),
            new ResolvedService("dns", IpAddr.FromV4(0x0A0A0001), IpProtocol.Udp, 53, new[] { new ResolvedBackend(IpAddr.FromV4(0x0A140002), 5353, snat) }),
            new ResolvedService("web6", IpAddr.Parse("fd00:10::1"), IpProtocol.Tcp, 80,
                new[] { new ResolvedBackend(IpAddr.Parse("fd00:20::2"), 8080, IpAddr.Parse("fd00:20::1")) }),
        };
        return StandalonePipeline.Create(services, new[] { (2, LbcMac), (3, LbsMac) }, _routes, new Engine.Configuration.EngineOptions(), new EngineCounters());
    }

    /// <summary>Splits a frame at the given lengths (the rest in a last buffer), as the kernel fills UMEM chunks.</summary>
    private static byte[][] Split(byte[] frame, params int[] lengths)
    {
        var parts = new List<byte[]>();
        int at = 0;
        foreach (int n in lengths)
        {
            parts.Add(frame[at..(at + n)]);
            at += n;
        }
        parts.Add(frame[at..]);
        return parts.ToArray();
    }

    /// <summary>What the worker does with a chain's first buffer: parse it knowing the rest's length, sum the rest.</summary>
    private static DropReason ParseChain(byte[][] buffers, out ParsedPacket p)
    {
        int beyond = buffers.Skip(1).Sum(b => b.Length);
        var reason = PacketParser.Parse(buffers[0], beyond, out p);
        if (reason != DropReason.None)
            return reason;
        ulong sum = 0;
        int offset = p.L4InFrame;
        foreach (var b in buffers.Skip(1))
        {
            sum += InternetChecksum.SumAt(b, offset);
            offset += b.Length;
        }
        p.BeyondSum = sum;
        return reason;
    }

    [Theory]
    [InlineData(true, 1792, 1792)] // even splits: 2048-byte chunks less the kernel's headroom
    [InlineData(true, 1001, 3333)] // odd splits: the rest's words pair up the other way round
    [InlineData(false, 1792, 1792)]
    [InlineData(false, 999, 2001)]
    public void A_partial_checksum_is_completed_across_the_buffers_of_a_jumbo_frame(bool tcp, int first, int second)
    {
        var frame = (tcp ? Tcp("10.10.0.2", 40000, "10.10.0.1", 80) : Udp("10.10.0.2", 40000, "10.10.0.1", 53))
            .Payload(8900).Checksum(ChecksumKind.Partial).Build();
        var buffers = Split(frame, first, second);
        var processor = Processor();

        Assert.Equal(DropReason.None, ParseChain(buffers, out var p));
        Assert.Equal(frame.Length - first, p.Beyond);
        Assert.Equal(Verdict.Transmit, processor.Process(buffers[0], in p, 1000, out var sent));

        Assert.Equal(3, sent.EgressIfIndex);
        var ip = ParseIPv4(buffers.SelectMany(b => b).ToArray());
        Assert.Equal("10.20.0.2", ip.DestinationAddress.ToString());
        Assert.True(ip.ValidIPChecksum);
        Assert.True(tcp ? ip.Extract<TcpPacket>().ValidTcpChecksum : ip.Extract<UdpPacket>().ValidUdpChecksum);
        Assert.Equal(1, processor.Counters.PartialChecksumsRepaired);
    }

    [Fact]
    public void A_partial_checksum_of_an_ipv6_jumbo_frame_is_completed_across_its_buffers()
    {
        var frame = Tcp("fd00:10::2", 40000, "fd00:10::1", 80).Payload(8900).Checksum(ChecksumKind.Partial).Build();
        var buffers = Split(frame, 1791, 1792);
        var processor = Processor();

        Assert.Equal(DropReason.None, ParseChain(buffers, out var p));
        Assert.Equal(Verdict.Transmit, processor.Process(buffers[0], in p, 1000, out _));

        var whole = buffers.SelectMany(b => b).ToArray();
        Assert.True(ReferenceChecksum.VerifiesV6(whole.AsSpan(14), 40, 6));
        Assert.Equal("fd00:20::2", ParseIPv6(whole).DestinationAddress.ToString());
    }

    [Fact]
    public void A_full_checksum_of_a_jumbo_frame_is_updated_without_reading_the_other_buffers()
    {
        var frame = Tcp("10.10.0.2", 40000, "10.10.0.1", 80).Payload(8900).Build();
        var buffers = Split(frame, 1792, 1792);
        var processor = Processor();
        Assert.Equal(DropReason.None, PacketParser.Parse(buffers[0], frame.Length - 1792, out var p)); // no BeyondSum

        Assert.Equal(Verdict.Transmit, processor.Process(buffers[0], in p, 1000, out _));

        Assert.True(ParseIPv4(buffers.SelectMany(b => b).ToArray()).Extract<TcpPacket>().ValidTcpChecksum);
        Assert.Equal(0, processor.Counters.PartialChecksumsRepaired);
    }

    [Theory]
    [InlineData(ChecksumKind.Partial, true)]
    [InlineData(ChecksumKind.Valid, false)]
    public void Only_a_partial_checksum_asks_for_the_other_buffers_to_be_summed(ChecksumKind kind, bool partial)
    {
        var frame = Udp("10.10.0.2", 40000, "10.10.0.1", 53).Payload(8900).Checksum(kind).Build();
        Assert.Equal(DropReason.None, PacketParser.Parse(frame.AsSpan(0, 1792), frame.Length - 1792, out var p));
        Assert.Equal(partial, Processor().HasPartialChecksum(frame.AsSpan(0, 1792), in p));
    }

    [Fact]
    public void A_first_buffer_whose_ip_length_exceeds_what_follows_is_malformed()
    {
        var frame = Udp("10.10.0.2", 40000, "10.10.0.1", 53).Payload(8900).Build();
        Assert.Equal(DropReason.Malformed, PacketParser.Parse(frame.AsSpan(0, 1792), frame.Length - 1792 - 1, out _));
        Assert.Equal(DropReason.Malformed, PacketParser.Parse(frame.AsSpan(0, 1792), out _));
    }

    [Fact]
    public void A_udp_length_is_checked_against_the_whole_frame_not_the_first_buffer()
    {
        var frame = Udp("10.10.0.2", 40000, "10.10.0.1", 53).Payload(8900).Build();
        Assert.Equal(DropReason.None, PacketParser.Parse(frame.AsSpan(0, 1792), frame.Length - 1792, out var p));
        Assert.Equal(8908, p.L4Length);
        Assert.Equal(1792 - p.L4Offset, p.L4InFrame);
    }
}
