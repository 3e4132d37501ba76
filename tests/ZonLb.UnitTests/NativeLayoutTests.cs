using System.Runtime.InteropServices;
using ZonLb.Native.Abi;
using ZonLb.Native.Bpf;
using ZonLb.Native.Interop;
using ZonLb.Testing;

namespace ZonLb.UnitTests;

/// <summary>
/// Every struct shared with the kernel, libxdp or the BPF programs has the layout the C side has: the oracle is the C
/// compiler, which compiles a program of sizeof and offsetof over the real headers (linux/if_xdp.h, xdp/xsk.h, the
/// project's bpf/zonlb_abi.h) and prints them; each C# field's offset (Marshal.OffsetOf) and each struct's size must
/// match, as the .NET runtime's interop tests hold its own structs against the platform's.
/// </summary>
public class NativeLayoutTests
{
    /// <summary>C struct, C# type, and (C field, C# field) pairs.</summary>
    public static TheoryData<string, Type, string[]> Structs => new()
    {
        { "struct xdp_desc", typeof(XdpDesc), new[] { "addr:Addr", "len:Len", "options:Options" } },
        { "struct xdp_ring_offset", typeof(XdpRingOffset), new[] { "producer:Producer", "consumer:Consumer", "desc:Desc", "flags:Flags" } },
        { "struct xdp_mmap_offsets", typeof(XdpMmapOffsets), new[] { "rx:Rx", "tx:Tx", "fr:Fill", "cr:Completion" } },
        { "struct xdp_statistics", typeof(XdpStatistics), new[] { "rx_dropped:RxDropped", "rx_invalid_descs:RxInvalidDescs",
            "tx_invalid_descs:TxInvalidDescs", "rx_ring_full:RxRingFull", "rx_fill_ring_empty_descs:RxFillRingEmptyDescs",
            "tx_ring_empty_descs:TxRingEmptyDescs" } },
        { "struct xsk_ring_prod", typeof(XskRingView), new[] { "cached_prod:CachedProd", "cached_cons:CachedCons", "mask:Mask",
            "size:Size", "producer:Producer", "consumer:Consumer", "ring:Ring", "flags:Flags" } },
        { "struct xsk_ring_cons", typeof(XskRingView), new[] { "cached_prod:CachedProd", "cached_cons:CachedCons", "mask:Mask",
            "size:Size", "producer:Producer", "consumer:Consumer", "ring:Ring", "flags:Flags" } },
        { "struct xsk_umem_config", typeof(XskUmemConfig), new[] { "fill_size:FillSize", "comp_size:CompSize", "frame_size:FrameSize",
            "frame_headroom:FrameHeadroom", "flags:Flags" } },
        { "struct xsk_socket_config", typeof(XskSocketConfig), new[] { "rx_size:RxSize", "tx_size:TxSize", "libxdp_flags:LibXdpFlags",
            "xdp_flags:XdpFlags", "bind_flags:BindFlags" } },
        { "struct zonlb_service_key", typeof(SteeredServiceKey), new[] { "addr:Addr", "port:PortBe", "proto:Proto", "pad:Pad" } },
        { "struct zonlb_nat_key", typeof(NatKey), new[] { "addr:Addr", "proto:Proto", "pad:Pad0" } },
        { "struct zonlb_nat_range", typeof(NatRange), new[] { "port_min:PortMin", "port_max:PortMax" } },
        { "struct zonlb_addr", typeof(MapAddress), Array.Empty<string>() },
        { "struct zonlb_if_slots", typeof(IfSlots), new[] { "first:First", "count:Count" } },
        { "struct zonlb_owner", typeof(Owner), new[] { "pid:Pid", "pad:Pad", "start_time:StartTime" } },
        { "struct zonlb_frag_key", typeof(FragKey), new[] { "saddr:Source", "daddr:Destination", "id:Id", "proto:Proto", "pad:Pad0" } },
    };

    [Theory]
    [MemberData(nameof(Structs))]
    public void A_struct_shared_with_c_has_the_c_layout(string cStruct, Type type, string[] fields)
    {
        var c = CLayouts();
        Assert.True(c.ContainsKey($"{cStruct}"), $"the C program printed no size for {cStruct}");
        Assert.Equal(c[cStruct], Marshal.SizeOf(type));
        foreach (var pair in fields)
        {
            var (cField, csField) = (pair.Split(':')[0], pair.Split(':')[1]);
            Assert.Equal(c[$"{cStruct}.{cField}"], (long)Marshal.OffsetOf(type, csField));
        }
    }

    [Fact]
    public void The_steering_programs_constants_are_the_engines()
    {
        var c = CLayouts();
        Assert.Equal((long)SteeringAbi.MaxXsks, c["ZONLB_MAX_XSKS"]);
        Assert.Equal((long)SteeringAbi.CounterCount, c["ZONLB_XDP_COUNTERS"]);
        Assert.Equal((long)XdpConstants.XDP_USE_NEED_WAKEUP, c["XDP_USE_NEED_WAKEUP"]);
        if (c.ContainsKey("XDP_USE_SG")) // enum-free #defines of Linux 6.6, absent from older UAPI headers
            Assert.Equal((long)XdpConstants.XDP_USE_SG, c["XDP_USE_SG"]);
        Assert.Equal((long)XdpConstants.XDP_ZEROCOPY, c["XDP_ZEROCOPY"]);
        Assert.Equal((long)XdpConstants.XDP_COPY, c["XDP_COPY"]);
        if (c.ContainsKey("XDP_PKT_CONTD"))
            Assert.Equal((long)XdpConstants.XDP_PKT_CONTD, c["XDP_PKT_CONTD"]);
        Assert.Equal((long)XdpConstants.XDP_OPTIONS_ZEROCOPY, c["XDP_OPTIONS_ZEROCOPY"]);
        Assert.Equal((long)LibXdp.XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD, c["XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD"]);
        Assert.Equal((long)LibXdp.XDP_MODE_NATIVE, c["XDP_MODE_NATIVE"]);
        Assert.Equal((long)LibXdp.XDP_MODE_SKB, c["XDP_MODE_SKB"]);
        Assert.Equal((long)LibBpf.BPF_PROG_TYPE_EXT, c["BPF_PROG_TYPE_EXT"]);
    }

    private static readonly Lazy<Dictionary<string, long>> Layouts = new(Compile);

    private static Dictionary<string, long> CLayouts() => Layouts.Value;

    /// <summary>Compiles and runs the C program that prints "name value" per line: sizes, offsets and constants.</summary>
    private static Dictionary<string, long> Compile()
    {
        string root = Command.RepoRoot();
        var lines = new List<string>();
        void Size(string s) => lines.Add($"    printf(\"{s} %zu\\n\", sizeof({s}));");
        void Offset(string s, string f) => lines.Add($"    printf(\"{s}.{f} %zu\\n\", offsetof({s}, {f}));");
        // a constant newer than the build machine's headers (XDP_USE_SG: Linux 6.6) is not printed, and not checked
        void Constant(string k) => lines.Add($"#ifdef {k}\n    printf(\"{k} %lld\\n\", (long long)({k}));\n#endif");
        foreach (var row in Structs)
        {
            string s = (string)row[0];
            Size(s);
            foreach (var pair in (string[])row[2])
                Offset(s, pair.Split(':')[0]);
        }
        foreach (var k in new[] { "ZONLB_MAX_XSKS", "XDP_USE_NEED_WAKEUP", "XDP_USE_SG", "XDP_ZEROCOPY", "XDP_COPY",
                     "XDP_PKT_CONTD", "XDP_OPTIONS_ZEROCOPY", "XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD" })
            Constant(k);
        foreach (var k in new[] { "ZONLB_XDP_COUNTERS", "XDP_MODE_NATIVE", "XDP_MODE_SKB", "BPF_PROG_TYPE_EXT" })
            lines.Add($"    printf(\"{k} %lld\\n\", (long long)({k}));"); // enumerators: always there
        string dir = Path.Combine(Path.GetTempPath(), $"zlbt-layout-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            string source = Path.Combine(dir, "layout.c"), exe = Path.Combine(dir, "layout");
            File.WriteAllText(source,
                "#include <stddef.h>\n#include <stdio.h>\n#include <linux/bpf.h>\n#include <linux/if_xdp.h>\n#include <xdp/xsk.h>\n#include <xdp/libxdp.h>\n" +
                "#include \"zonlb_abi.h\"\nint main(void)\n{\n" + string.Join('\n', lines) + "\n    return 0;\n}\n");
            var build = Command.Run("clang", new[] { "-I", Path.Combine(root, "bpf"), source, "-o", exe }, TimeSpan.FromSeconds(60));
            Assert.True(build.ExitCode == 0, build.Output);
            var run = Command.Run(exe);
            Assert.True(run.ExitCode == 0, run.Output);
            var d = new Dictionary<string, long>();
            foreach (var line in run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                int space = line.LastIndexOf(' ');
                d[line[..space]] = long.Parse(line[(space + 1)..]);
            }
            return d;
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
