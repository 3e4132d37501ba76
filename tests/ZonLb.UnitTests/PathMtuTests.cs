using System.Buffers.Binary;
using PacketDotNet;
using ZonLb.Engine.Configuration;
using ZonLb.Engine.Counters;
using ZonLb.Engine.Packets;
using ZonLb.Engine.Pipeline;
using ZonLb.Engine.Services;
using ZonLb.PipelineTesting;
using ZonLb.Testing;
using static ZonLb.Testing.PacketBuilder;
using static ZonLb.UnitTests.TestTopology;

namespace ZonLb.UnitTests;

/// <summary>Packets larger than the egress interface's MTU: not sent, answered like a router would.</summary>
public class PathMtuTests
{
    private static PacketProcessor Processor(int backendSideMtu)
    {
        var routes = new FixedRoutes()
            .Subnet("10.10.0.0", 2).Subnet("10.20.0.0", 3).Subnet("fd00:10::", 2).Subnet("fd00:20::", 3)
            .Neighbor("10.20.0.2", new byte[] { 2, 0, 0, 0, 5, 2 }).Neighbor("fd00:20::2", new byte[] { 2, 0, 0, 0, 5, 2 });
        var p = StandalonePipeline.Create(new[]
            {
                new ResolvedService("web", IpAddr.Parse("10.10.0.1"), IpProtocol.Tcp, 80, new[] { new ResolvedBackend(IpAddr.Parse("10.20.0.2"), 8080, IpAddr.Parse("10.20.0.1")) }),
                new ResolvedService("dns", IpAddr.Parse("10.10.0.1"), IpProtocol.Udp, 53, new[] { new ResolvedBackend(IpAddr.Parse("10.20.0.2"), 53, IpAddr.Parse("10.20.0.1")) }),
                new ResolvedService("web6", IpAddr.Parse("fd00:10::1"), IpProtocol.Tcp, 80, new[] { new ResolvedBackend(IpAddr.Parse("fd00:20::2"), 8080, IpAddr.Parse("fd00:20::1")) }),
            }, new[] { (2, LbcMac), (3, LbsMac) }, routes, new EngineOptions(), new EngineCounters());
        p.SetMtu(3, backendSideMtu);
        return p;
    }

    [Fact]
    public void A_packet_that_fits_the_egress_mtu_is_sent()
    {
        var p = Processor(1280);
        var frame = Tcp("10.10.0.2", 40000, "10.10.0.1", 80).Payload(1240).DontFragment().Build(); // 1280 bytes of IP
        Assert.Equal(Verdict.Transmit, p.Process(frame, 1000, out _));
    }

    [Fact]
    public void A_df_packet_over_the_egress_mtu_is_not_sent_and_left_as_it_arrived()
    {
        var p = Processor(1280);
        var frame = Tcp("10.10.0.2", 40000, "10.10.0.1", 80).Payload(1241).DontFragment().Build();
        var original = (byte[])frame.Clone();
        Assert.Equal(Verdict.Drop, p.Process(frame, 1000, out var dropped));
        Assert.Equal(DropReason.FragmentationNeeded, dropped.DropReason);
        Assert.Equal(1280, dropped.Mtu);
        Assert.Equal(original, frame);
    }

    [Fact]
    public void An_ipv4_packet_without_df_over_the_mtu_is_counted_apart()
    {
        var p = Processor(1280);
        var frame = Udp("10.10.0.2", 5000, "10.10.0.1", 53).Payload(1300).Build();
        Assert.Equal(Verdict.Drop, p.Process(frame, 1000, out var dropped));
        Assert.Equal(DropReason.MtuExceeded, dropped.DropReason);
    }

    [Fact]
    public void The_answer_is_a_valid_fragmentation_needed_with_the_mtu_quoting_the_original()
    {
        var original = Tcp("10.10.0.2", 40000, "10.10.0.1", 80).Payload(1400).DontFragment().Build();
        var buffer = new byte[2048];
        original.CopyTo(buffer, 0);

        int n = IcmpErrors.BuildTooBig(buffer, original.Length, 1280, IpAddr.Parse("10.10.0.1"), default, LbcMac);

        var ip = ParseIPv4(buffer[..n]);
        Assert.Equal("10.10.0.1", ip.SourceAddress.ToString());
        Assert.Equal("10.10.0.2", ip.DestinationAddress.ToString());
        Assert.True(ip.ValidIPChecksum);
        Assert.True(ip.Extract<IcmpV4Packet>().ValidIcmpChecksum);
        Assert.Equal((3, 4), (buffer[34], buffer[35])); // destination unreachable, fragmentation needed
        Assert.Equal(1280, BinaryPrimitives.ReadUInt16BigEndian(buffer.AsSpan(34 + 6)));
        Assert.Equal(original[14..(14 + 28)], buffer[(34 + 8)..n]);
    }

    [Fact]
    public void An_ipv6_packet_over_the_mtu_gets_packet_too_big()
    {
        var p = Processor(1280);
        var frame = Tcp("fd00:10::2", 40000, "fd00:10::1", 80).Payload(1300).Build();
        Assert.Equal(Verdict.Drop, p.Process(frame, 1000, out var dropped));
        Assert.Equal(DropReason.FragmentationNeeded, dropped.DropReason);

        var buffer = new byte[2048];
        frame.CopyTo(buffer, 0);
        int n = IcmpErrors.BuildTooBig(buffer, frame.Length, 1280, default, IpAddr.Parse("fd00:10::1"), LbcMac);
        Assert.Equal(14 + 1280, n);
        Assert.Equal(2, buffer[14 + 40]);
        Assert.Equal(1280u, BinaryPrimitives.ReadUInt32BigEndian(buffer.AsSpan(14 + 40 + 4)));
        Assert.True(ReferenceChecksum.VerifiesV6(buffer.AsSpan(14, n - 14), 40, 58));
    }
}
