using ZonLb.Native.Memory;

namespace ZonLb.UnitTests;

/// <summary>The raw-memory array under the connection table: zero-filled, bounds-checked, safe after Dispose.</summary>
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
