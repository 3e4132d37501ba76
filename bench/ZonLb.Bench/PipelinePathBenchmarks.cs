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
/// The per-packet pipeline by path and family, one operation = one packet, batch of 64 frames in one buffer:
/// Established = a client packet and the backend's reply of established flows (IPv4 and IPv6);
/// NewFlow = the first packet of a flow (connection table miss, Maglev, NAT port, insert); every 4096 new flows
/// the table is flushed, so the insert's later removal is included, spread over the packets; after each batch
/// the frames are copied back from a pristine batch and given new source ports (checksums updated
/// incrementally), which is measured too (a few ns per packet, more at 1500 bytes).
/// Small frames: 64 bytes (IPv4) and 78 (IPv6, the smallest TCP one) / 62 (IPv6 UDP).
/// </summary>
[MemoryDiagnoser]
public class PipelinePathBenchmarks
{
    private const int Batch = 64, FrameSize = 2048, FlowsBeforeFlush = 4096;
    private byte[] _umem = Array.Empty<byte>(), _pristine = Array.Empty<byte>();
    private PacketProcessor _processor = null!;
    private int _nextPort;
    private int _created;

    [Params("v4", "v6")]
    public string Family { get; set; } = "v4";

    [Params("tcp", "udp")]
    public string Protocol { get; set; } = "tcp";

    [Params("small", "1500")]
    public string Size { get; set; } = "small";

    private bool V6 => Family == "v6";
    private bool IsTcp => Protocol == "tcp";
    private int FrameLength => Size == "1500" ? 1514 : V6 ? (IsTcp ? 78 : 62) : 64;
    private int L4Offset => V6 ? 14 + 40 : 14 + 20;

    private IpAddr Client => V6 ? IpAddr.Parse("fd00:10::2") : IpAddr.Parse("10.10.0.2");
    private IpAddr Vip => V6 ? IpAddr.Parse("fd00:10::1") : IpAddr.Parse("10.10.0.1");

    [GlobalSetup]
    public void Setup()
    {
        var proto = IsTcp ? IpProtocol.Tcp : IpProtocol.Udp;
        var backend = V6 ? IpAddr.Parse("fd00:20::2") : IpAddr.Parse("10.20.0.2");
        var snat = V6 ? IpAddr.Parse("fd00:20::1") : IpAddr.Parse("10.20.0.1");
        var services = new[] { new ResolvedService("web", Vip, proto, 80, new[] { new ResolvedBackend(backend, 8080, snat) }) };
        _processor = StandalonePipeline.Create(services, new[] { (2, new byte[] { 2, 0, 0, 0, 0xC, 1 }), (3, new byte[] { 2, 0, 0, 0, 5, 1 }) },
            new BenchRoutes(), new EngineOptions { ConnectionCapacity = 65536 }, new EngineCounters());
        _umem = new byte[Batch * FrameSize];
        for (int i = 0; i < Batch; i++)
        {
            ushort port = (ushort)(1000 + i);
            var f = V6 ? Frames.V6(IsTcp, Client, port, Vip, 80, FrameLength)
                : IsTcp ? Frames.Tcp(Client.V4, port, Vip.V4, 80, FrameLength) : Frames.Udp(Client.V4, port, Vip.V4, 80, FrameLength);
            f.CopyTo(_umem, i * FrameSize);
        }
        _pristine = (byte[])_umem.Clone();
        _nextPort = 1000 + Batch;
    }

    [Benchmark(OperationsPerInvoke = Batch * 2)]
    public int Established()
    {
        // in passes over the batch, as a worker runs (see PipelineBenchmarks: no header read right after the
        // harness wrote it)
        int sent = EstablishedPass() + EstablishedPass();
        if (sent != Batch * 2)
            throw new InvalidOperationException($"only {sent} of {Batch * 2} packets were forwarded");
        return sent;
    }

    /// <summary>Each frame once through the pipeline, then every frame turned into its reply.</summary>
    private int EstablishedPass()
    {
        int sent = 0;
        var umem = _umem.AsSpan();
        for (int i = 0; i < Batch; i++)
        {
            if (_processor.Process(umem.Slice(i * FrameSize, FrameLength), 1, out _) == Verdict.Transmit)
                sent++;
        }
        for (int i = 0; i < Batch; i++)
        {
            var frame = umem.Slice(i * FrameSize, FrameLength);
            SwapEnds(frame);
            ResetHops(frame);
        }
        return sent;
    }

    [Benchmark(OperationsPerInvoke = Batch)]
    public int NewFlow()
    {
        int sent = 0;
        var umem = _umem.AsSpan();
        for (int i = 0; i < Batch; i++)
        {
            var frame = umem.Slice(i * FrameSize, FrameLength);
            if (_processor.Process(frame, 1, out _) == Verdict.Transmit)
                sent++;
        }
        if (sent != Batch)
            throw new InvalidOperationException($"only {sent} of {Batch} new flows were forwarded");
        _created += Batch;
        if (_created >= FlowsBeforeFlush)
        {
            _processor.FlushConnections();
            _created = 0;
        }
        RenumberSources();
        return sent;
    }

    /// <summary>The batch's frames as the client sent them again, with new source ports: new flows.</summary>
    private void RenumberSources()
    {
        if (_nextPort >= 60000)
            _nextPort = 1;
        var umem = _umem.AsSpan();
        int cs = L4Offset + (IsTcp ? 16 : 6);
        for (int i = 0; i < Batch; i++)
        {
            var frame = umem.Slice(i * FrameSize, FrameLength);
            _pristine.AsSpan(i * FrameSize, FrameLength).CopyTo(frame);
            ushort oldPort = (ushort)(1000 + i), newPort = (ushort)(_nextPort + i);
            frame[L4Offset] = (byte)(newPort >> 8);
            frame[L4Offset + 1] = (byte)newPort;
            ushort check = (ushort)(frame[cs] << 8 | frame[cs + 1]);
            check = ZonLb.Engine.Checksums.InternetChecksum.Update16(check, oldPort, newPort);
            frame[cs] = (byte)(check >> 8);
            frame[cs + 1] = (byte)check;
        }
        _nextPort += Batch;
    }

    private void ResetHops(Span<byte> frame) => Frames.ResetHops(frame, V6);

    private void SwapEnds(Span<byte> frame) => Frames.SwapEnds(frame, V6);
}
