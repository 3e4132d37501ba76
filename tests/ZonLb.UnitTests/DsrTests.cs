using PacketDotNet;
using ZonLb.Engine.Configuration;
using ZonLb.Engine.Counters;
using ZonLb.Engine.Packets;
using ZonLb.Engine.Pipeline;
using ZonLb.Engine.Services;
using ZonLb.PipelineTesting;
using static ZonLb.Testing.PacketBuilder;
using static ZonLb.UnitTests.TestTopology;

namespace ZonLb.UnitTests;

/// <summary>Direct server return: only the MACs change; the backend choice is kept per connection.</summary>
public class DsrTests
{
    private static readonly byte[] Backend1Mac = { 2, 0, 0, 0, 5, 2 };
    private static readonly byte[] Backend2Mac = { 2, 0, 0, 0, 5, 3 };

    private static PacketProcessor Processor(int backends = 1)
    {
        var routes = new FixedRoutes().Subnet("10.10.0.0", 2).Subnet("10.20.0.0", 3)
            .Neighbor("10.20.0.2", Backend1Mac).Neighbor("10.20.0.3", Backend2Mac);
        var b = Enumerable.Range(0, backends).Select(i => new ResolvedBackend(IpAddr.FromV4(0x0A140002u + (uint)i), 80, default)).ToArray();
        return StandalonePipeline.Create(new[] { new ResolvedService("web", IpAddr.Parse("10.10.0.5"), IpProtocol.Tcp, 80, b, dsr: true) },
            new[] { (2, LbcMac), (3, LbsMac) }, routes, new EngineOptions(), new EngineCounters());
    }

    [Fact]
    public void Only_the_macs_change_toward_the_backend()
    {
        var p = Processor();
        var frame = Tcp("10.10.0.2", 40000, "10.10.0.5", 80).Payload(100).Build();
        var original = (byte[])frame.Clone();

        Assert.Equal(Verdict.Transmit, p.Process(frame, 1000, out var sent));

        Assert.Equal(3, sent.EgressIfIndex);
        Assert.Equal(Backend1Mac, frame[0..6]);
        Assert.Equal(LbsMac, frame[6..12]);
        Assert.Equal(original[12..], frame[12..]); // addresses, TTL, ports, checksums: the client's
        Assert.False(p.Table.IsNatAddress(default, IpProtocol.Tcp));
    }

    [Fact]
    public void A_partial_checksum_is_completed_without_changing_addresses()
    {
        var p = Processor();
        var frame = Tcp("10.10.0.2", 40000, "10.10.0.5", 80).Payload(300).Checksum(ChecksumKind.Partial).Build();
        Assert.Equal(Verdict.Transmit, p.Process(frame, 1000, out _));
        var ip = ParseIPv4(frame);
        Assert.Equal("10.10.0.5", ip.DestinationAddress.ToString());
        Assert.Equal(64, ip.TimeToLive);
        Assert.True(ip.Extract<TcpPacket>().ValidTcpChecksum);
        Assert.Equal(1, p.Counters.PartialChecksumsRepaired);
    }

    [Fact]
    public void Connections_keep_their_backend_when_backends_are_added()
    {
        var p = Processor(backends: 1);
        for (ushort port = 1000; port < 1020; port++)
            p.Process(Tcp("10.10.0.2", port, "10.10.0.5", 80).Build(), 1000, out _);

        p.AddBackend(0, new ResolvedBackend(IpAddr.Parse("10.20.0.3"), 80, default));

        int moved = 0, newOnSecond = 0;
        for (ushort port = 1000; port < 1020; port++)
        {
            var next = Tcp("10.10.0.2", port, "10.10.0.5", 80).TcpFlags(0x10).Build();
            p.Process(next, 1001, out _);
            moved += next[5] == Backend2Mac[5] ? 1 : 0;
        }
        for (ushort port = 2000; port < 2040; port++)
        {
            var syn = Tcp("10.10.0.2", port, "10.10.0.5", 80).Build();
            p.Process(syn, 1002, out _);
            newOnSecond += syn[5] == Backend2Mac[5] ? 1 : 0;
        }
        Assert.Equal(0, moved);
        Assert.InRange(newOnSecond, 5, 35); // new flows do use the new backend
    }

    [Fact]
    public void Connections_are_tracked_from_the_clients_side_alone_and_expire()
    {
        var p = Processor();
        p.Process(Tcp("10.10.0.2", 40000, "10.10.0.5", 80).Build(), 1000, out _);
        p.Process(Tcp("10.10.0.2", 40000, "10.10.0.5", 80).TcpFlags(0x10).Build(), 1001, out _);
        Assert.Equal(1, p.Connections.Count);
        p.Process(Tcp("10.10.0.2", 40000, "10.10.0.5", 80).TcpFlags(0x11).Build(), 1002, out _);
        p.ExpireConnections(1002 + 121_000, 1_000_000); // TIME_WAIT's 120 s
        Assert.Equal(0, p.Connections.Count);
    }
}
