using System.Buffers.Binary;
using ZonLb.Engine.Checksums;
using ZonLb.Engine.Configuration;
using ZonLb.Engine.Counters;
using ZonLb.Engine.Flows;
using ZonLb.Engine.Packets;
using ZonLb.Engine.Pipeline;
using ZonLb.Engine.Services;
using ZonLb.PipelineTesting;
using ZonLb.Testing;
using static ZonLb.Testing.PacketBuilder;
using static ZonLb.UnitTests.TestTopology;

namespace ZonLb.UnitTests;

/// <summary>
/// The fast lane (<see cref="PacketProcessor.TryFastLane"/>) against the general path as the oracle: two
/// processors with the same configuration get the same frames, one with the fast lane and one without, and
/// must leave the same bytes, verdicts, connections and counters. The frames mix established traffic (what
/// the lane takes) with everything it must leave alone.
/// Topology: client 10.10.0.x -- [ifindex 2 "lbc", VIP 10.10.0.1 | ifindex 3 "lbs", SNAT 10.20.0.1] -- backends 10.20.0.2, 10.20.0.3
/// </summary>
public class FastLaneTests
{
    private const int Clients = 6;

    private static PacketProcessor Processor()
    {
        var routes = new FixedRoutes().Subnet("10.10.0.0", 2).Subnet("10.20.0.0", 3).Subnet("fd00:10::", 2).Subnet("fd00:20::", 3)
            .Neighbor("10.20.0.2", new byte[] { 2, 0, 0, 0, 5, 2 }).Neighbor("10.20.0.3", new byte[] { 2, 0, 0, 0, 5, 3 })
            .Neighbor("fd00:20::2", new byte[] { 2, 0, 0, 0, 5, 2 }).Neighbor("fd00:20::3", new byte[] { 2, 0, 0, 0, 5, 3 });
        for (int i = 0; i < Clients; i++)
        {
            routes.Neighbor($"10.10.0.{2 + i}", new byte[] { 2, 0, 0, 0, 0xC, (byte)(2 + i) });
            routes.Neighbor($"fd00:10::{2 + i}", new byte[] { 2, 0, 0, 0, 0xC, (byte)(2 + i) });
        }
        ResolvedBackend[] Backends(string first, string second, string snat) => new[]
        {
            new ResolvedBackend(IpAddr.Parse(first), 8080, IpAddr.Parse(snat)),
            new ResolvedBackend(IpAddr.Parse(second), 8080, IpAddr.Parse(snat)),
        };
        var v4 = Backends("10.20.0.2", "10.20.0.3", "10.20.0.1");
        var v6 = Backends("fd00:20::2", "fd00:20::3", "fd00:20::1");
        var services = new[]
        {
            new ResolvedService("web", IpAddr.Parse("10.10.0.1"), IpProtocol.Tcp, 80, v4),
            new ResolvedService("dns", IpAddr.Parse("10.10.0.1"), IpProtocol.Udp, 53, v4),
            new ResolvedService("ping", IpAddr.Parse("10.10.0.1"), IpProtocol.Icmp, 0, v4),
            new ResolvedService("direct", IpAddr.Parse("10.10.0.1"), IpProtocol.Tcp, 443, v4, dsr: true),
            new ResolvedService("web6", IpAddr.Parse("fd00:10::1"), IpProtocol.Tcp, 80, v6),
            new ResolvedService("dns6", IpAddr.Parse("fd00:10::1"), IpProtocol.Udp, 53, v6),
        };
        var p = StandalonePipeline.Create(services, new[] { (2, LbcMac), (3, LbsMac) }, routes,
            new EngineOptions { ConnectionCapacity = 4096 }, new EngineCounters(), seed: 0x5EED); // one seed: the same NAT ports both ways
        p.SetMtu(3, 900);
        return p;
    }

    [Fact]
    public void An_established_tcp_segment_takes_the_fast_lane_and_a_syn_does_not()
    {
        var p = Processor();
        var syn = Tcp("10.10.0.2", 40000, "10.10.0.1", 80).TcpFlags(Wire.TcpSyn).Build();
        Assert.False(p.TryFastLane(syn, 1000, out _));
        Assert.Equal(Verdict.Transmit, p.Process(syn, 1000, out _));
        ushort natPort = BinaryPrimitives.ReadUInt16BigEndian(syn.AsSpan(34));
        var synAck = Tcp("10.20.0.2", 8080, "10.20.0.1", natPort).TcpFlags(Wire.TcpSyn | 0x10).Build();
        Assert.Equal(Verdict.Transmit, p.Process(synAck, 1001, out _));
        var ack = Tcp("10.10.0.2", 40000, "10.10.0.1", 80).TcpFlags(0x10).Payload(100).Build();
        Assert.Equal(Verdict.Transmit, p.Process(ack, 1002, out _)); // the connection becomes ESTABLISHED

        var data = Tcp("10.10.0.2", 40000, "10.10.0.1", 80).TcpFlags(0x18).Payload(100).Build();
        Assert.True(p.TryFastLane(data, 1003, out var toBackend));
        Assert.Equal(3, toBackend.EgressIfIndex);
        Assert.Equal(IpAddr.FromV4(0x0A140002), toBackend.NextHop);
        var reply = Tcp("10.20.0.2", 8080, "10.20.0.1", natPort).TcpFlags(0x10).Build();
        Assert.True(p.TryFastLane(reply, 1004, out var toClient));
        Assert.Equal(2, toClient.EgressIfIndex);
    }

    [Fact]
    public void The_fast_lane_leaves_every_frame_as_the_general_path_does()
    {
        var fast = Processor();
        var general = Processor();
        var rng = new Random(20261126);
        var natPorts = new HashSet<(bool V6, ushort Port, byte Protocol)>();
        int fastLaneTook = 0, fastLaneTookV6 = 0, transmitted = 0;
        long now = 1000;
        for (int step = 0; step < 40_000; step++)
        {
            // time passes, sometimes past the next-hop cache's lifetime (the connections' hints go stale)
            now += rng.Next(20) == 0 ? 6000 : rng.Next(3);
            var frame = NextFrame(rng, natPorts);
            var a = (byte[])frame.Clone();
            var b = (byte[])frame.Clone();
            bool parses = PacketParser.Parse(frame, out var original) == DropReason.None;
            // the worker's first pass: a candidate is not parsed, and is prefetched by its hint
            bool candidate = fast.FastLaneCandidate(frame, out var hint);
            if (candidate && parses)
            {
                var expected = general.HintOf(ref original, DropReason.None);
                Assert.True(expected.Hash == hint.Hash && expected.BackendSide == hint.BackendSide, $"step {step}: the candidate's hint differs from the parsed frame's");
            }
            Verdict va;
            if (fast.TryFastLane(a, now, out var fa))
            {
                Assert.True(candidate, $"step {step}: the fast lane took a frame the first pass would have parsed instead");
                va = Verdict.Transmit;
                fastLaneTook++;
                if (BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(12)) == Wire.EtherTypeIPv6)
                    fastLaneTookV6++;
            }
            else
            {
                va = fast.Process(a, now, out fa);
            }
            var vb = GeneralPath(general, b, now, out var fb);

            Assert.True(vb == va, $"step {step}: verdict {va}, the general path says {vb}; frame {Convert.ToHexString(frame)}");
            Assert.True(b.AsSpan().SequenceEqual(a), $"step {step}: bytes differ\n fast    {Convert.ToHexString(a)}\n general {Convert.ToHexString(b)}");
            Assert.True(fb.Equals(fa), $"step {step}: the fast lane's forwarding ({fa.EgressIfIndex}, {fa.NextHop}, vlan {fa.Vlan}, {fa.DropReason}) " +
                $"differs from the general path's ({fb.EgressIfIndex}, {fb.NextHop}, vlan {fb.Vlan}, {fb.DropReason})");
            // the connection the frame belongs to, right away (a state left behind could be overwritten later)
            if (parses && !original.IsIcmpError && !original.IsLaterFragment)
            {
                var key = new FlowKey(original.SrcIp, original.DstIp, original.SrcPort, original.DstPort, original.Protocol);
                if (general.Connections.TryGetByClient(key, out int ci) || general.Connections.TryGetByBackend(key, out ci))
                    Assert.True(general.Connections[ci].Equals(fast.Connections[ci]), $"step {step}: connection {ci} differs");
            }
            if (va == Verdict.Transmit)
            {
                transmitted++;
                LearnNatPort(a, natPorts);
            }
        }

        AssertSameCounters(general.Counters, fast.Counters);
        for (int i = 0; i < general.Connections.Capacity; i++)
            Assert.Equal(general.Connections[i], fast.Connections[i]);
        foreach (var s in general.Table.Services)
        {
            var t = fast.Table.Services.Single(x => x.Name == s.Name);
            for (int bi = 0; bi < s.Backends.Length; bi++)
            {
                var g = s.Backends[bi].PerWorker[0];
                var f = t.Backends[bi].PerWorker[0];
                Assert.Equal((g.PacketsToBackend, g.BytesToBackend, g.PacketsToClient, g.BytesToClient, g.NewConnections, g.ActiveConnections),
                    (f.PacketsToBackend, f.BytesToBackend, f.PacketsToClient, f.BytesToClient, f.NewConnections, f.ActiveConnections));
            }
        }
        // not vacuous: the lane took a good share of the frames of both families, and declined the rest
        Assert.InRange(fastLaneTook, 2000, transmitted - 1000);
        Assert.InRange(fastLaneTookV6, 400, fastLaneTook - 1000);
    }

    private static void AssertSameCounters(EngineCounters expected, EngineCounters actual)
    {
        foreach (var f in typeof(EngineCounters).GetFields().Where(f => f.FieldType == typeof(long)))
            Assert.True(Equals(f.GetValue(expected), f.GetValue(actual)), $"{f.Name}: {f.GetValue(actual)}, the general path counted {f.GetValue(expected)}");
        foreach (var reason in Enum.GetValues<DropReason>())
            Assert.True(expected.Drops(reason) == actual.Drops(reason), $"drops {reason}: {actual.Drops(reason)}, the general path counted {expected.Drops(reason)}");
    }

    /// <summary>The NAT port a frame toward a backend left with, so that the backend's replies can be made.</summary>
    private static void LearnNatPort(byte[] frame, HashSet<(bool V6, ushort Port, byte Protocol)> natPorts)
    {
        ushort etherType = BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(12));
        if (etherType == Wire.EtherTypeIPv4 && frame[14] == 0x45 && frame[23] != 1 &&
            IpAddr.ReadV4(frame.AsSpan(26)) == IpAddr.Parse("10.20.0.1"))
            natPorts.Add((false, BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(34)), frame[23]));
        else if (etherType == Wire.EtherTypeIPv6 && frame[20] is 6 or 17 && IpAddr.ReadV6(frame.AsSpan(22)) == IpAddr.Parse("fd00:20::1"))
            natPorts.Add((true, BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(54)), frame[20]));
    }

    /// <summary>The general path alone: the parse and <see cref="PacketProcessor.Process(Span{byte}, in ParsedPacket, long, out Forwarding)"/>,
    /// which never tries the fast lane (a frame that does not parse is counted as the processor counts it).</summary>
    private static Verdict GeneralPath(PacketProcessor p, byte[] frame, long now, out Forwarding f)
    {
        var reason = PacketParser.Parse(frame, out var parsed);
        if (reason == DropReason.None)
            return p.Process(frame, in parsed, now, out f);
        p.Counters.Drop(reason);
        f = new Forwarding { DropReason = reason };
        return Verdict.Drop;
    }

    private static byte[] NextFrame(Random rng, HashSet<(bool V6, ushort Port, byte Protocol)> natPorts)
    {
        int client = rng.Next(Clients);
        ushort clientPort = (ushort)(40000 + rng.Next(4));
        bool udp = rng.Next(3) == 0;
        bool v6 = rng.Next(3) == 0;
        string clientIp = v6 ? $"fd00:10::{2 + client}" : $"10.10.0.{2 + client}", vip = v6 ? "fd00:10::1" : "10.10.0.1";
        bool toBackend = natPorts.Count == 0 || rng.Next(2) == 0;
        PacketBuilder b;
        if (rng.Next(40) == 0)
        {
            b = IcmpEcho(clientIp, vip, clientPort);
        }
        else if (toBackend)
        {
            ushort service = rng.Next(15) == 0 ? (ushort)443 : udp ? (ushort)53 : (ushort)80;
            b = udp ? Udp(clientIp, clientPort, vip, service) : Tcp(clientIp, clientPort, vip, service);
        }
        else
        {
            var ports = natPorts.Where(k => k.V6 == v6 && k.Protocol == (udp ? 17 : 6)).ToList();
            if (ports.Count == 0)
                return NextFrame(rng, natPorts);
            var k = ports[rng.Next(ports.Count)];
            // the wrong backend finds no connection
            string backend = v6 ? (rng.Next(2) == 0 ? "fd00:20::2" : "fd00:20::3") : rng.Next(2) == 0 ? "10.20.0.2" : "10.20.0.3";
            string snat = v6 ? "fd00:20::1" : "10.20.0.1";
            b = udp ? Udp(backend, 8080, snat, k.Port) : Tcp(backend, 8080, snat, k.Port);
        }
        if (!udp)
        {
            byte[] flags = { 0x10, 0x10, 0x10, 0x18, 0x18, Wire.TcpSyn, Wire.TcpSyn | 0x10, Wire.TcpFin | 0x10, Wire.TcpRst, 0 };
            b.TcpFlags(flags[rng.Next(flags.Length)]);
        }
        b.Payload(rng.Next(4) == 0 ? rng.Next(700, 1000) : rng.Next(0, 80), rng.Next());
        switch (rng.Next(12))
        {
            case 0: b.Checksum(ChecksumKind.Partial); break;
            case 1: b.Checksum(ChecksumKind.Partial); break;
            case 2: b.Ttl((byte)rng.Next(0, 3)); break;
            case 3: b.Vlan(100); break;
            case 4 when !v6: b.DontFragment(); break;
            case 4 when v6: b.ExtensionHeader(rng.Next(2) == 0 ? (byte)60 : (byte)0); break;
            case 5 when udp: b.UdpWithoutChecksum(); break;
        }
        var frame = b.Build();
        switch (rng.Next(14))
        {
            case 0:
                frame = WithIpOptions(frame);
                break;
            case 1:
                frame[14 + 10] ^= 1; // IPv4: a wrong header checksum; IPv6: another source address
                break;
            case 2:
                frame[rng.Next(12, Math.Min(frame.Length, 80))] ^= (byte)(1 << rng.Next(8)); // any header bit
                break;
            case 3:
                frame[14 + 6] |= 0x20; // IPv4: more fragments; IPv6: another next header
                frame = FixIpChecksum(frame);
                break;
            case 4:
                Array.Resize(ref frame, frame.Length + rng.Next(1, 20)); // Ethernet padding after the packet
                break;
            case 7 when frame.Length > 14:
                frame[14] = (byte)((frame[14] & 0x0F) | (rng.Next(16) << 4)); // any IP version (4 or 6 at times)
                frame = FixIpChecksum(frame);
                break;
            case 5:
                Array.Resize(ref frame, Math.Max(14, frame.Length - rng.Next(1, 30))); // cut short
                break;
            case 6 when frame.Length >= 42 && frame[14] == 0x45:
                // lengths that agree with each other but leave less than a transport header
                int l4 = rng.Next(0, 20);
                BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(16), (ushort)(20 + l4));
                if (frame[23] == 17)
                    BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(38), (ushort)l4);
                frame = FixIpChecksum(frame);
                break;
            case 6 when frame.Length >= 62 && frame[14] >> 4 == 6:
                int payload = rng.Next(0, 20); // the same for IPv6
                BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(18), (ushort)payload);
                if (frame[20] == 17)
                    BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(58), (ushort)payload);
                break;
        }
        return frame;
    }

    /// <summary>The same packet with 4 bytes of IP options (NOPs): header length 24, total length and header
    /// checksum adjusted; the transport checksum does not cover them.</summary>
    private static byte[] WithIpOptions(byte[] frame)
    {
        if (frame[14] != 0x45)
            return frame;
        var longer = new byte[frame.Length + 4];
        frame.AsSpan(0, 34).CopyTo(longer);
        longer.AsSpan(34, 4).Fill(1);
        frame.AsSpan(34).CopyTo(longer.AsSpan(38));
        longer[14] = 0x46;
        BinaryPrimitives.WriteUInt16BigEndian(longer.AsSpan(16), (ushort)(BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(16)) + 4));
        return FixIpChecksum(longer);
    }

    private static byte[] FixIpChecksum(byte[] frame)
    {
        if (BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(12)) != Wire.EtherTypeIPv4)
            return frame;
        int ihl = (frame[14] & 0xF) * 4;
        if (frame.Length < 14 + ihl)
            return frame;
        frame[24] = frame[25] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(24), InternetChecksum.IPv4Header(frame.AsSpan(14, ihl)));
        return frame;
    }
}
