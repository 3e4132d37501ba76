using BenchmarkDotNet.Attributes;
using ZonLb.Engine.Balancing;

namespace ZonLb.Bench;

/// <summary>Building a Maglev table (65537 slots) for a service of N backends, as a backend change does.</summary>
[MemoryDiagnoser]
public class MaglevBenchmarks
{
    private string[] _ids = Array.Empty<string>();
    private int[] _weights = Array.Empty<int>();

    [Params(10, 100, 1000)]
    public int Backends { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _ids = Enumerable.Range(0, Backends).Select(i => $"10.{i / 65536 % 256}.{i / 256 % 256}.{i % 256}:8080").ToArray();
        _weights = Enumerable.Repeat(1, Backends).ToArray();
    }

    [Benchmark]
    public int Build() => new MaglevTable(_ids, _weights).Size;
}
