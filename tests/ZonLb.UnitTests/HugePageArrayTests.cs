using ZonLb.Native.Memory;

namespace ZonLb.UnitTests;

/// <summary>The raw-memory array under the connection table: zero-filled, bounds-checked, safe after Dispose.</summary>
[Collection(ResidentMemory.Name)]
public class HugePageArrayTests
{
    [Fact]
    public void A_new_array_is_zero_filled_and_keeps_what_is_written()
    {
        using var a = new HugePageArray<ulong>(1 << 20); // 8 MiB: spans several 2 MiB pages
        Assert.Equal(1 << 20, a.Length);
        Assert.Equal(0UL, a[0]);
        Assert.Equal(0UL, a[(1 << 20) - 1]);
        a[123457] = 0xDEADBEEF;
        a[(1 << 20) - 1] = 7;
        Assert.Equal(0xDEADBEEFUL, a[123457]);
        Assert.Equal(7UL, a[(1 << 20) - 1]);
        a.Clear();
        Assert.Equal(0UL, a[123457]);
    }

    [Fact]
    public void A_populated_array_is_resident_from_the_start_and_a_lazy_one_is_not()
    {
        const long Bytes = 64L << 20;
        long before = Resident();
        using var lazy = new HugePageArray<long>(Bytes / 8);
        long afterLazy = Resident();
        using var populated = new HugePageArray<long>(Bytes / 8, populate: true);
        long afterPopulated = Resident();

        Assert.True(afterLazy - before < 8L << 20, $"a lazy array made {(afterLazy - before) >> 20} MiB resident");
        Assert.True(afterPopulated - afterLazy >= 60L << 20, $"a populated array made only {(afterPopulated - afterLazy) >> 20} MiB resident");
        Assert.Equal(0L, populated[Bytes / 8 - 1]);
    }

    /// <summary>This process's resident memory (VmRSS).</summary>
    private static long Resident() =>
        long.Parse(File.ReadAllLines("/proc/self/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal))
            .Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;

    [Fact]
    public void An_index_outside_the_array_throws_naming_it()
    {
        using var a = new HugePageArray<int>(16);
        var e = Assert.Throws<IndexOutOfRangeException>(() => a[16]);
        Assert.Contains("16", e.Message);
        Assert.Throws<IndexOutOfRangeException>(() => a[-1]);
        a.Prefetch(16); // out of range: no effect, no fault
        a.Prefetch(-1);
    }

    [Fact]
    public void A_disposed_array_is_empty_and_refuses_access_instead_of_faulting()
    {
        var a = new HugePageArray<long>(1024);
        a[5] = 5;
        a.Dispose();
        Assert.Equal(0, a.Length);
        Assert.Throws<IndexOutOfRangeException>(() => a[5]);
        a.Prefetch(5);
        a.Clear();
        a.Dispose(); // twice is harmless
    }

    [Fact]
    public void A_length_of_zero_is_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new HugePageArray<byte>(0));
    }
}

/// <summary>Tests that measure this process's resident memory run alone: other tests allocating or freeing at the same
/// time would move VmRSS under them.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ResidentMemory
{
    public const string Name = "resident memory";
}
