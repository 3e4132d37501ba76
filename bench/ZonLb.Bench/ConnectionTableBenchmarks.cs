using BenchmarkDotNet.Attributes;
using ZonLb.Engine.Flows;
using ZonLb.Engine.Packets;

namespace ZonLb.Bench;

/// <summary>
/// Connection table cost as it fills: lookup hit, lookup miss, and insert+remove, with 1 thousand to 10 million
/// live entries. Keys are probed in a random order over the whole table, so large tables pay their cache misses.
/// One operation = one lookup (or one insert and one remove).
/// </summary>
[MemoryDiagnoser]
public class ConnectionTableBenchmarks
{
    private const int Probes = 4096;
    private ConnectionTable _table = null!;
    private FlowKey[] _hits = Array.Empty<FlowKey>();
    private FlowKey[] _misses = Array.Empty<FlowKey>();
    private FlowKey[] _replies = Array.Empty<FlowKey>();
    private Connection[] _fresh = Array.Empty<Connection>();

    [Params(1_000, 100_000, 1_000_000, 10_000_000)]
    public int Entries { get; set; }

    private static Connection Make(int i) => new()
    {
        ClientIp = IpAddr.FromV4(0x0A000000u + (uint)(i >> 16)), ClientPort = (ushort)i, VipIp = IpAddr.FromV4(0x0A0A0001), VipPort = 80,
        BackendIp = IpAddr.FromV4(0x0A140002u + (uint)(i >> 16)), BackendPort = 8080, SnatIp = IpAddr.FromV4(0x0A140001), NatPort = (ushort)i,
        Protocol = IpProtocol.Tcp,
    };

    [GlobalCleanup]
    public void Cleanup() => _table.Dispose();

    [GlobalSetup]
    public void Setup()
    {
        _table = new ConnectionTable(Entries + Probes);
        for (int i = 0; i < Entries; i++)
            _table.Add(Make(i));
        var rng = new Random(1);
        _hits = Enumerable.Range(0, Probes).Select(_ => Make(rng.Next(Entries)).ClientKey).ToArray();
        _replies = Enumerable.Range(0, Probes).Select(_ => Make(rng.Next(Entries)).BackendKey).ToArray();
        _misses = Enumerable.Range(0, Probes).Select(i => Make(Entries + Probes + i).ClientKey).ToArray();
        _fresh = Enumerable.Range(0, Probes).Select(i => Make(Entries + i)).ToArray();
    }

    [Benchmark(OperationsPerInvoke = Probes)]
    public int LookupHit()
    {
        int found = 0;
        foreach (var k in _hits)
            if (_table.TryGetByClient(k, out _))
                found++;
        return found;
    }

    /// <summary>Hits by backend-side key (replies): through the backend-side index to the entry.</summary>
    [Benchmark(OperationsPerInvoke = Probes)]
    public int LookupHitReply()
    {
        int found = 0;
        foreach (var k in _replies)
            if (_table.TryGetByBackend(k, out _))
                found++;
        return found;
    }

    /// <summary>The same lookups as <see cref="LookupHit"/>, 64 at a time as the worker gets them from its RX
    /// ring, in passes that overlap their cache misses (hash and prefetch slots, prefetch entries, probe).</summary>
    [Benchmark(OperationsPerInvoke = Probes)]
    public int LookupHitBatched() => Batched(_hits);

    /// <summary>The misses of <see cref="LookupMiss"/>, 64 at a time.</summary>
    [Benchmark(OperationsPerInvoke = Probes)]
    public int LookupMissBatched() => Batched(_misses);

    private readonly int[] _found = new int[Batch];
    private const int Batch = 64;

    private int Batched(FlowKey[] keys)
    {
        int found = 0;
        for (int i = 0; i < keys.Length; i += Batch)
            found += _table.TryGetByClientBatch(keys.AsSpan(i, Batch), _found);
        return found;
    }

    [Benchmark(OperationsPerInvoke = Probes)]
    public int LookupMiss()
    {
        int found = 0;
        foreach (var k in _misses)
            if (_table.TryGetByClient(k, out _))
                found++;
        return found;
    }

    [Benchmark(OperationsPerInvoke = Probes)]
    public void InsertAndRemove()
    {
        foreach (var c in _fresh)
            _table.Remove(_table.Add(c));
    }
}
