using System.Buffers.Binary;
using CsCheck;
using ZonLb.Engine.Checksums;
using ZonLb.Engine.Configuration;
using ZonLb.Engine.Counters;
using ZonLb.Engine.Packets;
using ZonLb.Engine.Pipeline;
using ZonLb.Engine.Services;
using ZonLb.PipelineTesting;
using static ZonLb.Testing.PacketBuilder;

namespace ZonLb.UnitTests;

/// <summary>
/// Hostile frames: a property-based generator (CsCheck) of structurally varied Ethernet/VLAN/IPv4 frames, and a
/// mutation fuzzer over valid frames. The pipeline must never throw, never touch bytes outside the frame it is
/// given, and account for every frame: forwarded, held, or dropped under exactly one reason.
/// CI runs a bounded number of iterations; ZONLB_FUZZ_SECONDS=N runs each for N seconds instead
/// (dotnet test tests/ZonLb.UnitTests --filter Fuzz -e ZONLB_FUZZ_SECONDS=600).
/// A failing input is written to the test output directory as fuzz-crash-*.hex; add it to FuzzRegressions/.
/// </summary>
public class FuzzTests
{
    private readonly Xunit.Abstractions.ITestOutputHelper _out;

    public FuzzTests(Xunit.Abstractions.ITestOutputHelper output) => _out = output;

    private void Report(string fuzzer, PacketProcessor p)
    {
        var c = p.Counters;
        _out.WriteLine($"{fuzzer}: {c.TotalDrops + c.ToBackend + c.ToClient} frames; new connections {c.NewConnections}, " +
                       $"to backend {c.ToBackend}, to client {c.ToClient}, partial checksums repaired {c.PartialChecksumsRepaired}; drops: {c.FormatDrops()}");
    }

    private static readonly int? Seconds = int.TryParse(Environment.GetEnvironmentVariable("ZONLB_FUZZ_SECONDS"), out int s) ? s : null;
    // The VIP (10.10.0.1) and the service ports (80, 53) stand three times each, so that a run of the structured
    // fuzzer makes 15-26 connections, not 2-7 (with those, about one run in 150 made none and failed the coverage check).
    private static readonly uint[] Addresses = { 0x0A0A0002, 0x0A0A0001, 0x0A0A0001, 0x0A0A0001, 0x0A140002, 0x0A140001, 0xC0000201, 0x00000000, 0xFFFFFFFF };
    private static readonly ushort[] Ports = { 80, 80, 80, 53, 53, 53, 8080, 5353, 61000, 61001, 65535, 0, 1, 40000 };
    private static readonly byte[] Protocols = { 1, 6, 17, 6, 17, 1, 58, 0, 255 };
    private const int Guard = 64;

    /// <summary>A pipeline shaped like the integration tests' (TCP 80, UDP 53, ICMP on 10.10.0.1; backend 10.20.0.2).</summary>
    private static PacketProcessor Processor()
    {
        var routes = new FixedRoutes().Subnet("10.10.0.0", 2).Subnet("10.20.0.0", 3)
            .Neighbor("10.10.0.2", new byte[] { 2, 0, 0, 0, 0xC, 2 });
        // 10.20.0.2 left unresolved half of the time would hold frames; resolve it for the fuzz
        routes.Neighbor("10.20.0.2", new byte[] { 2, 0, 0, 0, 5, 2 });
        var services = new[]
        {
            new ResolvedService("web", IpAddr.FromV4(0x0A0A0001), IpProtocol.Tcp, 80, new[] { new ResolvedBackend(IpAddr.FromV4(0x0A140002), 8080, IpAddr.FromV4(0x0A140001)) }),
            new ResolvedService("dns", IpAddr.FromV4(0x0A0A0001), IpProtocol.Udp, 53, new[] { new ResolvedBackend(IpAddr.FromV4(0x0A140002), 5353, IpAddr.FromV4(0x0A140001)) }),
            new ResolvedService("ping", IpAddr.FromV4(0x0A0A0001), IpProtocol.Icmp, 0, new[] { new ResolvedBackend(IpAddr.FromV4(0x0A140002), 0, IpAddr.FromV4(0x0A140001)) }),
        };
        return StandalonePipeline.Create(services, new[] { (2, new byte[6]), (3, new byte[6]) }, routes,
            new EngineOptions { ConnectionCapacity = 4096, NatPortMin = 61000, NatPortMax = 61063 }, new EngineCounters());
    }

    /// <summary>Runs one frame inside a guarded chunk; fails on an exception, a touched guard byte, or a frame not accounted for.</summary>
    private static void RunGuarded(PacketProcessor p, byte[] input)
    {
        var chunk = new byte[Guard + input.Length + Guard];
        Array.Fill(chunk, (byte)0xA5);
        input.CopyTo(chunk, Guard);
        long dropsBefore = p.Counters.TotalDrops;
        Verdict v;
        try
        {
            v = p.Process(chunk.AsSpan(Guard, input.Length), 1000, out _);
        }
        catch (Exception e)
        {
            Save(input);
            throw new InvalidOperationException($"the pipeline threw on {Convert.ToHexString(input)}", e);
        }
        for (int i = 0; i < Guard; i++)
        {
            if (chunk[i] != 0xA5 || chunk[Guard + input.Length + i] != 0xA5)
            {
                Save(input);
                throw new InvalidOperationException($"the pipeline wrote outside the frame on {Convert.ToHexString(input)}");
            }
        }
        long dropped = p.Counters.TotalDrops - dropsBefore;
        if ((v == Verdict.Drop && dropped != 1) || (v != Verdict.Drop && dropped != 0))
        {
            Save(input);
            throw new InvalidOperationException($"verdict {v} with {dropped} drop(s) counted on {Convert.ToHexString(input)}");
        }
    }

    private static void Save(byte[] input) =>
        File.WriteAllText(Path.Combine(AppContext.BaseDirectory, $"fuzz-crash-{Guid.NewGuid():N}.hex"), Convert.ToHexString(input));

    /// <summary>Frames built field by field: VLAN stacks, any version/IHL, total length off by up to ±40,
    /// any flags/fragment offset, TTL, protocol, L4 bytes (TCP data offset, UDP length, ICMP type) and payload,
    /// addresses and ports drawn so that services and connections are hit too, then cut at any length.</summary>
    private static readonly Gen<byte[]> StructuredFrames =
        Gen.Select(
            Gen.Int[0, 3],                                     // VLAN tags
            Gen.Select(Gen.Byte, Gen.Int[-40, 40], Gen.UShort, Gen.Byte, Gen.Int[0, Protocols.Length - 1]),
            Gen.Select(Gen.Int[0, Addresses.Length - 1], Gen.Int[0, Addresses.Length - 1], Gen.Int[0, Ports.Length - 1], Gen.Int[0, Ports.Length - 1]),
            Gen.Byte.Array[0, 1500],                           // L4 header bytes and payload
            Gen.Bool,                                          // a correct IPv4 header checksum
            Gen.Int[0, 1600])                                  // where the frame is cut
        .Select((vlans, ip, ends, l4, goodChecksum, cut) =>
        {
            byte verIhl = ip.Item1, ttl = ip.Item4, proto = Protocols[ip.Item5];
            int lenDelta = ip.Item2;
            ushort frag = ip.Item3;
            int ihl = Math.Max(20, (verIhl & 0x0F) * 4);
            int l3 = 14 + 4 * vlans;
            var f = new byte[l3 + ihl + l4.Length];
            for (int v = 0; v < vlans; v++)
            {
                BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(12 + 4 * v), 0x8100);
                BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(14 + 4 * v), (ushort)(v + 1));
            }
            BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(l3 - 2), 0x0800);
            f[l3] = (byte)((verIhl & 0xF0) == 0x40 || (verIhl & 1) == 0 ? 0x40 | (ihl / 4) : verIhl);
            BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(l3 + 2), (ushort)Math.Clamp(ihl + l4.Length + lenDelta, 0, 65535));
            BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(l3 + 6), (frag & 3) == 0 ? frag : (ushort)0);
            f[l3 + 8] = ttl;
            f[l3 + 9] = proto;
            BinaryPrimitives.WriteUInt32BigEndian(f.AsSpan(l3 + 12), Addresses[ends.Item1]);
            BinaryPrimitives.WriteUInt32BigEndian(f.AsSpan(l3 + 16), Addresses[ends.Item2]);
            l4.CopyTo(f, l3 + ihl);
            if (l4.Length >= 4)
            {
                BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(l3 + ihl), Ports[ends.Item3]);
                BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(l3 + ihl + 2), Ports[ends.Item4]);
            }
            if (goodChecksum)
                BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(l3 + 10), InternetChecksum.IPv4Header(f.AsSpan(l3, ihl)));
            return f.AsSpan(0, Math.Min(cut, f.Length)).ToArray();
        });

    [Fact]
    public void Structured_hostile_frames_never_break_the_pipeline()
    {
        var p = Processor();
        if (Seconds is int secs)
            StructuredFrames.Sample(f => RunGuarded(p, f), time: secs, threads: 1);
        else
            StructuredFrames.Sample(f => RunGuarded(p, f), iter: 200_000, threads: 1);
        AssertDeepCoverage(p);
        Report("structured", p);
    }

    /// <summary>The generators must reach past the parser: connections made, frames translated, many reasons seen.</summary>
    private static void AssertDeepCoverage(PacketProcessor p)
    {
        Assert.True(p.Counters.NewConnections > 0, "no frame created a connection");
        Assert.True(p.Counters.ToBackend > 0, "no frame was translated toward a backend");
        int reasons = Enum.GetValues<DropReason>().Count(r => r != DropReason.None && p.Counters.Drops(r) > 0);
        Assert.True(reasons >= 6, $"only {reasons} drop reasons seen: {p.Counters.FormatDrops()}");
    }

    private static byte[][] Corpus() => new[]
    {
        Tcp("10.10.0.2", 40000, "10.10.0.1", 80).Build(),
        Tcp("10.10.0.2", 40001, "10.10.0.1", 80).TcpFlags(0x18).Payload(200).Checksum(ChecksumKind.Partial).Build(),
        Tcp("10.20.0.2", 8080, "10.20.0.1", 61000).TcpFlags(0x12).Build(),
        Udp("10.10.0.2", 40000, "10.10.0.1", 53).Payload(40).Build(),
        Udp("10.10.0.2", 40000, "10.10.0.1", 53).Payload(40).UdpWithoutChecksum().Build(),
        Udp("10.20.0.2", 5353, "10.20.0.1", 61001).Payload(40).Build(),
        IcmpEcho("10.10.0.2", "10.10.0.1", 7).Payload(56).Build(),
        IcmpEcho("10.20.0.2", "10.20.0.1", 61002, reply: true).Payload(56).Build(),
        Tcp("10.10.0.2", 40000, "10.10.0.1", 80).Vlan(10).Payload(30).Build(),
    };

    [Fact]
    public void Mutated_valid_frames_never_break_the_pipeline()
    {
        var p = Processor();
        var corpus = Corpus();
        foreach (var f in corpus)
            RunGuarded(p, f); // the seeds themselves, which also create connections for replies to hit
        var rng = new Random(20261126);
        var end = Seconds is int secs ? DateTime.UtcNow.AddSeconds(secs) : DateTime.MaxValue;
        for (long i = 0; Seconds != null ? DateTime.UtcNow < end : i < 300_000; i++)
        {
            var f = (byte[])corpus[rng.Next(corpus.Length)].Clone();
            int mutations = rng.Next(1, 6);
            for (int m = 0; m < mutations; m++)
            {
                switch (rng.Next(6))
                {
                    case 0: if (f.Length > 0) f[rng.Next(f.Length)] ^= (byte)(1 << rng.Next(8)); break;        // bit flip
                    case 1: if (f.Length > 0) f[rng.Next(f.Length)] = (byte)rng.Next(256); break;              // byte set
                    case 2: if (f.Length > 14) f[14 + rng.Next(Math.Min(40, f.Length - 14))] = (byte)rng.Next(256); break; // header byte
                    case 3: f = f.AsSpan(0, rng.Next(f.Length + 1)).ToArray(); break;                           // truncate
                    case 4: { var g = new byte[f.Length + rng.Next(1, 64)]; f.CopyTo(g, 0); rng.NextBytes(g.AsSpan(f.Length)); f = g; break; } // extend
                    default: if (f.Length > 1) { int at = rng.Next(f.Length); f = f.Take(at).Concat(f.Skip(at + 1)).ToArray(); } break; // delete
                }
            }
            RunGuarded(p, f);
        }
        AssertDeepCoverage(p);
        Assert.True(p.Counters.ToClient > 0, "no mutated reply was translated back");
        Report("mutation", p);
    }

    public static IEnumerable<object[]> Regressions() =>
        Directory.GetFiles(Path.Combine(AppContext.BaseDirectory, "FuzzRegressions"), "*.hex").Select(f => new object[] { Path.GetFileName(f) });

    /// <summary>Inputs kept because they once broke something, or were worth pinning down.</summary>
    [Theory]
    [MemberData(nameof(Regressions))]
    public void Kept_inputs_stay_harmless(string file)
    {
        var input = Convert.FromHexString(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "FuzzRegressions", file)).Trim());
        RunGuarded(Processor(), input);
    }
}
