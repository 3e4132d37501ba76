using BenchmarkDotNet.Attributes;
using ZonLb.Engine.Checksums;

namespace ZonLb.Bench;

/// <summary>Full Internet checksum over a buffer: scalar vs Vector128 vs Vector256 (bytes per second = Length / time).</summary>
[MemoryDiagnoser]
public class ChecksumBenchmarks
{
    private byte[] _data = Array.Empty<byte>();

    [Params(64, 576, 1500, 9000)]
    public int Length { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _data = new byte[Length];
        new Random(1).NextBytes(_data);
    }

    [Benchmark(Baseline = true)]
    public ushort Scalar16() => InternetChecksum.SumScalar(_data);

    [Benchmark]
    public ushort Scalar64() => InternetChecksum.SumScalar64(_data);

    [Benchmark]
    public ushort Vector128() => InternetChecksum.SumVector128(_data);

    [Benchmark]
    public ushort Vector256() => InternetChecksum.SumVector256(_data);

    [Benchmark]
    public ushort Vector512() => InternetChecksum.SumVector512(_data);

    private ushort _check = 0x1234;
    private uint _oldAddr = 0x0A0A0002, _newAddr = 0x0A140001;

    /// <summary>RFC 1624 update of a checksum for one changed IPv4 address (inputs from fields, so nothing folds away).</summary>
    [Benchmark]
    public ushort IncrementalAddressUpdate()
    {
        _check = InternetChecksum.Update32(_check, _oldAddr, _newAddr);
        (_oldAddr, _newAddr) = (_newAddr, _oldAddr);
        return _check;
    }
}
