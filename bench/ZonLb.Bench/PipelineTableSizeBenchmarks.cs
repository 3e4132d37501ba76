using BenchmarkDotNet.Attributes;
using ZonLb.Engine.Configuration;
using ZonLb.Engine.Counters;
using ZonLb.Engine.Packets;
using ZonLb.Engine.Pipeline;
using ZonLb.Engine.Services;
using ZonLb.PipelineTesting;

namespace ZonLb.Bench;

/// <summary>
/// The established-flow pipeline as the worker runs it, by batches of 64 frames (look at all: what the fast
/// lane will not take is parsed; optionally prefetch their connection lookups; process all: the fast lane,
/// or the general path where it declines), with 1 thousand or 1 million live connections and the
/// batch's frames drawn at random from all of them, so that a large table's lookups miss the caches.
/// Each frame (IPv4 TCP, 64 bytes) is translated to the backend, turned into the backend's reply and
/// translated back. One operation = one packet. Prefetch=false skips <see cref="PacketProcessor.PrefetchConnections"/>
/// (which itself does nothing for a table of less than <see cref="PacketProcessor.PrefetchFromCapacity"/> entries).
/// </summary>
[MemoryDiagnoser]
public class PipelineTableSizeBenchmarks
{
    private const int Batch = 64, Frames = 4096, FrameSize = 128, FrameLength = 64, Backends = 32;
    private byte[] _umem = Array.Empty<byte>();
    private PacketProcessor _processor = null!;
    private readonly ParsedPacket[] _parsed = new ParsedPacket[Batch];
    private readonly DropReason[] _reasons = new DropReason[Batch];
    private readonly LookupHint[] _hints = new LookupHint[Batch];
    private readonly bool[] _candidate = new bool[Batch];

    [Params(1_000, 1_000_000)]
    public int Connections { get; set; }

    [Params(false, true)]
    public bool Prefetch { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        // clients differ by address (port 1000, below the NAT range) so each packet is one lookup; 32 backends
        // share out the NAT ports (1024-65535 each)
        var backends = Enumerable.Range(0, Backends)
            .Select(i => new ResolvedBackend(IpAddr.FromV4(0x0A140002u + (uint)i), 8080, IpAddr.FromV4(0x0A140001)))
            .ToArray();
        var services = new[] { new ResolvedService("web", IpAddr.FromV4(0x0A0A0001), IpProtocol.Tcp, 80, backends) };
        // the default capacity (1M) unless more are needed: as deployed, the index is sized for the capacity,
        // so even a thousand live connections have their slots spread over megabytes
        var options = new EngineOptions { NatPortMin = 1024, NatPortMax = 65535 };
        options.ConnectionCapacity = Math.Max(options.ConnectionCapacity, Connections + Connections / 2);
        _processor = StandalonePipeline.Create(services, new[] { (2, new byte[] { 2, 0, 0, 0, 0xC, 1 }), (3, new byte[] { 2, 0, 0, 0, 5, 1 }) },
            new BenchRoutes(), options, new EngineCounters());
        for (int i = 0; i < Connections; i++)
        {
            var first = ZonLb.Bench.Frames.Tcp(0x0B000000u + (uint)i, 1000, 0x0A0A0001, 80, FrameLength);
            if (_processor.Process(first, 1, out var f) != Verdict.Transmit)
                throw new InvalidOperationException($"connection {i} was not created: {f.DropReason}");
        }
        var rng = new Random(1);
        _umem = new byte[Frames * FrameSize];
        for (int i = 0; i < Frames; i++)
            ZonLb.Bench.Frames.Tcp(0x0B000000u + (uint)rng.Next(Connections), 1000, 0x0A0A0001, 80, FrameLength).CopyTo(_umem, i * FrameSize);
    }

    [Benchmark(OperationsPerInvoke = Frames * 2)]
    public int EstablishedBatches()
    {
        int sent = 0;
        for (int b = 0; b < Frames; b += Batch)
        {
            sent += RunBatch(b); // client -> backend
            sent += RunBatch(b); // the backend's replies -> client (RunBatch swapped the ends)
        }
        if (sent != Frames * 2)
            throw new InvalidOperationException($"only {sent} of {Frames * 2} packets were forwarded");
        return sent;
    }

    private int RunBatch(int first)
    {
        // as the worker runs a batch: look at every frame (parse only those the fast lane will not take) and
        // get its lookup under way, then each frame through the fast lane or, if it declines, the general path
        var umem = _umem.AsSpan();
        for (int i = 0; i < Batch; i++)
        {
            var frame = umem.Slice((first + i) * FrameSize, FrameLength);
            _candidate[i] = _processor.FastLaneCandidate(frame, out _hints[i]);
            if (!_candidate[i])
            {
                _reasons[i] = PacketParser.Parse(frame, out _parsed[i]);
                _hints[i] = _processor.HintOf(ref _parsed[i], _reasons[i]);
            }
        }
        if (Prefetch)
            _processor.PrefetchConnections(_hints);
        int sent = 0;
        for (int i = 0; i < Batch; i++)
        {
            var frame = umem.Slice((first + i) * FrameSize, FrameLength);
            if (_candidate[i] && _processor.TryFastLane(frame, 1, out _))
            {
                sent++;
                continue;
            }
            if (_candidate[i])
                _reasons[i] = PacketParser.Parse(frame, out _parsed[i]);
            if (_reasons[i] == DropReason.None && _processor.Process(frame, in _parsed[i], 1, out _) == Verdict.Transmit)
                sent++;
        }
        // the replies, in a pass of their own: the next batch's parse never reads a header just written
        for (int i = 0; i < Batch; i++)
        {
            var frame = umem.Slice((first + i) * FrameSize, FrameLength);
            ZonLb.Bench.Frames.SwapEnds(frame, v6: false);
            ZonLb.Bench.Frames.ResetHops(frame, v6: false);
        }
        return sent;
    }
}
