using BenchmarkDotNet.Attributes;
using ZonLb.Engine.Configuration;
using ZonLb.Engine.Counters;
using ZonLb.Engine.Packets;
using ZonLb.Engine.Pipeline;
using ZonLb.Engine.Services;
using ZonLb.Engine.Routing;
using ZonLb.PipelineTesting;

namespace ZonLb.Bench;

/// <summary>
/// The whole per-packet pipeline (parse, connection lookup, full NAT, checksums, next hop, MACs) on a batch
/// of 64 frames laid out in one buffer like a UMEM, established TCP flows. One operation = one packet.
/// Each frame is translated client->backend; swapping its addresses and ports (12 bytes, checksums stay valid)
/// turns it into the backend's reply, which is translated back and swapped again into the client's next
/// packet: the frames stay valid forever, with no copy in the measured loop.
/// </summary>
[MemoryDiagnoser]
public class PipelineBenchmarks
{
    private const int Batch = 64;
    private const int FrameSize = 2048;
    private byte[] _umem = Array.Empty<byte>();
    private PacketProcessor _processor = null!;

    [Params(64, 1500)]
    public int FrameLength { get; set; }

    [Params("tcp", "udp")]
    public string Protocol { get; set; } = "tcp";

    /// <summary>Frames arriving with CHECKSUM_PARTIAL (veth TX offload): the full checksum is computed each time.</summary>
    [Params(false, true)]
    public bool Partial { get; set; }

    private int CsOffset => Protocol == "tcp" ? 34 + 16 : 34 + 6;

    [GlobalSetup]
    public void Setup()
    {
        var proto = Protocol == "tcp" ? IpProtocol.Tcp : IpProtocol.Udp;
        var services = new[] { new ResolvedService("web", IpAddr.FromV4(0x0A0A0001), proto, 80, new[] { new ResolvedBackend(IpAddr.FromV4(0x0A140002), 8080, IpAddr.FromV4(0x0A140001)) }) };
        _processor = StandalonePipeline.Create(services, new[] { (2, new byte[] { 2, 0, 0, 0, 0xC, 1 }), (3, new byte[] { 2, 0, 0, 0, 5, 1 }) },
            new BenchRoutes(), new EngineOptions(), new EngineCounters());
        _umem = new byte[Batch * FrameSize];
        for (int i = 0; i < Batch; i++)
        {
            var f = Protocol == "tcp"
                ? Frames.Tcp(0x0A0A0002, (ushort)(1000 + i), 0x0A0A0001, 80, FrameLength)
                : Frames.Udp(0x0A0A0002, (ushort)(1000 + i), 0x0A0A0001, 80, FrameLength);
            f.CopyTo(_umem, i * FrameSize);
            Prepare(_umem.AsSpan(i * FrameSize, FrameLength), swap: false);
        }
    }

    [Benchmark(OperationsPerInvoke = Batch * 2)]
    public int EstablishedBothDirections()
    {
        // in passes over the batch, as a worker runs: the frames are reset for the next pass in a pass of their
        // own, so the engine never reads a header the harness has just written (a load that overlaps recent
        // smaller stores waits for them: a store-forwarding stall real frames, written by the kernel long
        // before, do not have)
        int sent = RunPass() + RunPass();
        if (sent != Batch * 2)
            throw new InvalidOperationException($"only {sent} of {Batch * 2} packets were forwarded");
        return sent;
    }

    /// <summary>Each frame once through the pipeline, then every frame turned into its reply (ends swapped,
    /// TTL reset, made partial again where asked).</summary>
    private int RunPass()
    {
        int sent = 0;
        var umem = _umem.AsSpan();
        for (int i = 0; i < Batch; i++)
        {
            if (_processor.Process(umem.Slice(i * FrameSize, FrameLength), 1, out _) == Verdict.Transmit)
                sent++;
        }
        for (int i = 0; i < Batch; i++)
            Prepare(umem.Slice(i * FrameSize, FrameLength), swap: true);
        return sent;
    }

    private void Prepare(Span<byte> frame, bool swap)
    {
        if (swap)
            SwapEnds(frame);
        ResetTtl(frame);
        if (Partial)
            MakePartial(frame);
    }

    /// <summary>Leaves only the pseudo-header sum in the L4 checksum field, as a sender with TX offload does.</summary>
    private void MakePartial(Span<byte> frame)
    {
        uint src = (uint)(frame[26] << 24 | frame[27] << 16 | frame[28] << 8 | frame[29]);
        uint dst = (uint)(frame[30] << 24 | frame[31] << 16 | frame[32] << 8 | frame[33]);
        ushort sum = ZonLb.Engine.Checksums.InternetChecksum.PseudoHeaderSum(src, dst, frame[23], FrameLength - 34);
        frame[CsOffset] = (byte)(sum >> 8);
        frame[CsOffset + 1] = (byte)sum;
    }

    private static void ResetTtl(Span<byte> frame) => Frames.ResetHops(frame, v6: false);

    private static void SwapEnds(Span<byte> frame) => Frames.SwapEnds(frame, v6: false);
}
