using ZonLb.Engine.Configuration;
using ZonLb.Engine.Counters;
using ZonLb.Engine.Flows;
using ZonLb.Engine.Packets;
using ZonLb.Engine.Pipeline;
using ZonLb.Engine.Services;
using ZonLb.PipelineTesting;
using static ZonLb.Testing.PacketBuilder;

namespace ZonLb.UnitTests;

public class TcpTrackerTests
{
    private const byte Syn = 0x02, Ack = 0x10, Fin = 0x01, Rst = 0x04, SynAck = 0x12, FinAck = 0x11;

    /// <summary>(flags, from client?, expected state after the segment), starting from the first segment.</summary>
    public static IEnumerable<object[]> Lifecycles() => new[]
    {
        new object[] { "client closes first", new (byte, bool, TcpState)[]
        {
            (Syn, true, TcpState.SynSent), (SynAck, false, TcpState.SynRecv), (Ack, true, TcpState.Established),
            (Ack, false, TcpState.Established), (FinAck, true, TcpState.FinWait), (Ack, false, TcpState.CloseWait),
            (FinAck, false, TcpState.LastAck), (Ack, true, TcpState.TimeWait),
        } },
        new object[] { "backend closes first, FINs cross", new (byte, bool, TcpState)[]
        {
            (Syn, true, TcpState.SynSent), (SynAck, false, TcpState.SynRecv), (Ack, true, TcpState.Established),
            (FinAck, false, TcpState.FinWait), (FinAck, true, TcpState.LastAck), (Ack, false, TcpState.TimeWait),
        } },
        new object[] { "reset during the handshake", new (byte, bool, TcpState)[]
        {
            (Syn, true, TcpState.SynSent), (Rst, false, TcpState.Close),
        } },
        new object[] { "reset when established", new (byte, bool, TcpState)[]
        {
            (Syn, true, TcpState.SynSent), (SynAck, false, TcpState.SynRecv), (Ack, true, TcpState.Established), (Rst, true, TcpState.Close),
        } },
        new object[] { "picked up mid-stream", new (byte, bool, TcpState)[]
        {
            (Ack, true, TcpState.Established), (Ack, false, TcpState.Established),
        } },
        new object[] { "tuple reused after time wait", new (byte, bool, TcpState)[]
        {
            (Ack, true, TcpState.Established), (FinAck, true, TcpState.FinWait), (FinAck, false, TcpState.LastAck),
            (Ack, true, TcpState.TimeWait), (Syn, true, TcpState.SynSent), (SynAck, false, TcpState.SynRecv),
        } },
    };

    [Theory]
    [MemberData(nameof(Lifecycles))]
    public void Segments_walk_the_conntrack_states(string name, object lifecycle)
    {
        var steps = ((byte Flags, bool FromClient, TcpState After)[])lifecycle; // TcpState is internal
        Assert.NotEmpty(name);
        var state = TcpTracker.Initial(steps[0].Flags);
        bool finFromClient = false;
        Assert.Equal(steps[0].After, state);
        for (int i = 1; i < steps.Length; i++)
        {
            state = TcpTracker.Next(state, steps[i].Flags, steps[i].FromClient, ref finFromClient);
            Assert.Equal(steps[i].After, state);
        }
    }

    private static PacketProcessor Processor(EngineOptions o)
    {
        var routes = new FixedRoutes().Subnet("10.10.0.0", 2).Subnet("10.20.0.0", 3)
            .Neighbor("10.10.0.2", new byte[6]).Neighbor("10.20.0.2", new byte[6]);
        return StandalonePipeline.Create(
            new[]
            {
                new ResolvedService("web", IpAddr.FromV4(0x0A0A0001), IpProtocol.Tcp, 80, new[] { new ResolvedBackend(IpAddr.FromV4(0x0A140002), 8080, IpAddr.FromV4(0x0A140001)) }),
                new ResolvedService("dns", IpAddr.FromV4(0x0A0A0001), IpProtocol.Udp, 53, new[] { new ResolvedBackend(IpAddr.FromV4(0x0A140002), 53, IpAddr.FromV4(0x0A140001)) }),
            },
            new[] { (2, new byte[6]), (3, new byte[6]) }, routes, o, new EngineCounters());
    }

    private static ushort NatPort(byte[] translated) => (ushort)(translated[34] << 8 | translated[35]);

    [Fact]
    public void An_unanswered_syn_expires_after_the_syn_sent_timeout()
    {
        var p = Processor(new EngineOptions { TcpSynSentTimeoutSeconds = 5 });
        p.Process(Tcp("10.10.0.2", 1, "10.10.0.1", 80).Build(), 0, out _);
        p.ExpireConnections(4_999, int.MaxValue);
        Assert.Equal(1, p.Connections.Count);
        p.ExpireConnections(5_001, int.MaxValue);
        Assert.Equal(0, p.Connections.Count);
    }

    [Fact]
    public void An_established_connection_outlives_the_handshake_timeouts()
    {
        var p = Processor(new EngineOptions { TcpSynSentTimeoutSeconds = 5, TcpSynRecvTimeoutSeconds = 5, TcpEstablishedTimeoutSeconds = 100 });
        var syn = Tcp("10.10.0.2", 1, "10.10.0.1", 80).Build();
        p.Process(syn, 0, out _);
        p.Process(Tcp("10.20.0.2", 8080, "10.20.0.1", NatPort(syn)).TcpFlags(SynAck).Build(), 1, out _);
        p.Process(Tcp("10.10.0.2", 1, "10.10.0.1", 80).TcpFlags(Ack).Build(), 2, out _);
        p.ExpireConnections(50_000, int.MaxValue);
        Assert.Equal(1, p.Connections.Count);
        p.ExpireConnections(103_000, int.MaxValue);
        Assert.Equal(0, p.Connections.Count);
    }

    [Fact]
    public void A_reset_connection_is_forgotten_after_the_close_timeout()
    {
        var p = Processor(new EngineOptions { TcpCloseTimeoutSeconds = 10 });
        p.Process(Tcp("10.10.0.2", 1, "10.10.0.1", 80).TcpFlags(Ack).Build(), 0, out _);
        p.Process(Tcp("10.10.0.2", 1, "10.10.0.1", 80).TcpFlags(Rst).Build(), 0, out _);
        p.ExpireConnections(9_000, int.MaxValue);
        Assert.Equal(1, p.Connections.Count);
        p.ExpireConnections(10_001, int.MaxValue);
        Assert.Equal(0, p.Connections.Count);
    }

    [Fact]
    public void A_udp_flow_still_active_two_seconds_after_it_began_and_answered_gets_the_stream_timeout()
    {
        var p = Processor(new EngineOptions { UdpTimeoutSeconds = 30, UdpStreamTimeoutSeconds = 120 });
        var request = Udp("10.10.0.2", 1, "10.10.0.1", 53).Build();
        p.Process(request, 0, out _);
        p.Process(Udp("10.10.0.2", 2, "10.10.0.1", 53).Build(), 0, out _); // never answered
        p.Process(Udp("10.20.0.2", 53, "10.20.0.1", NatPort(request)).Build(), 5, out _);
        p.Process(Udp("10.10.0.2", 1, "10.10.0.1", 53).Build(), 2_500, out _); // the stream goes on

        p.ExpireConnections(31_000, int.MaxValue);
        Assert.Equal(1, p.Connections.Count);
        p.ExpireConnections(2_500 + 121_000, int.MaxValue);
        Assert.Equal(0, p.Connections.Count);
    }

    [Fact]
    public void A_single_udp_request_and_answer_keeps_the_short_udp_timeout()
    {
        // DNS: one query, one answer, from a fresh source port each time (conntrack keeps these on its 30 s timeout)
        var p = Processor(new EngineOptions { UdpTimeoutSeconds = 30, UdpStreamTimeoutSeconds = 120 });
        var request = Udp("10.10.0.2", 1, "10.10.0.1", 53).Build();
        p.Process(request, 0, out _);
        p.Process(Udp("10.20.0.2", 53, "10.20.0.1", NatPort(request)).Build(), 5, out _);

        p.ExpireConnections(29_000, int.MaxValue);
        Assert.Equal(1, p.Connections.Count);
        p.ExpireConnections(31_000, int.MaxValue);
        Assert.Equal(0, p.Connections.Count);
    }

    [Fact]
    public void A_bare_ack_picked_up_mid_stream_goes_after_the_unassured_timeout_not_the_established_one()
    {
        var p = Processor(new EngineOptions { TcpEstablishedTimeoutSeconds = 432000, TcpUnassuredTimeoutSeconds = 300 });
        p.Process(Tcp("10.10.0.2", 1, "10.10.0.1", 80).TcpFlags(0x10).Build(), 0, out _);

        p.ExpireConnections(299_000, int.MaxValue);
        Assert.Equal(1, p.Connections.Count);
        p.ExpireConnections(301_000, int.MaxValue);
        Assert.Equal(0, p.Connections.Count);
    }

    [Fact]
    public void A_connection_picked_up_mid_stream_that_the_backend_answers_keeps_the_established_timeout()
    {
        var p = Processor(new EngineOptions { TcpEstablishedTimeoutSeconds = 432000, TcpUnassuredTimeoutSeconds = 300 });
        var ack = Tcp("10.10.0.2", 1, "10.10.0.1", 80).TcpFlags(0x10).Build();
        p.Process(ack, 0, out _);
        p.Process(Tcp("10.20.0.2", 8080, "10.20.0.1", NatPort(ack)).TcpFlags(0x10).Build(), 10, out _);

        p.ExpireConnections(301_000, int.MaxValue);
        Assert.Equal(1, p.Connections.Count);
        p.ExpireConnections(432_001_000, int.MaxValue);
        Assert.Equal(0, p.Connections.Count);
    }
}
