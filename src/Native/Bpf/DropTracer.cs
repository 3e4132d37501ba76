using System.Net;
using System.Runtime.InteropServices;
using ZonLb.Native.Interop;

namespace ZonLb.Native.Bpf;

/// <summary>struct zonlb_drop_event (bpf/zonlb_trace_abi.h).</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct DropEvent
{
    public ulong TimestampNs;
    public ulong Location;
    public uint Reason;
    public uint IfIndex;
    public uint NetnsInode;
    public fixed byte Saddr[16];
    public fixed byte Daddr[16];
    public ushort SportBe;
    public ushort DportBe;
    public byte Protocol;
    public fixed byte Pad[3];
    public fixed byte IfName[16];

    public readonly string Interface
    {
        get
        {
            fixed (byte* p = IfName)
                return Marshal.PtrToStringUTF8((nint)p) ?? "";
        }
    }

    public readonly IPAddress Source
    {
        get
        {
            fixed (byte* p = Saddr)
                return Unmap(new ReadOnlySpan<byte>(p, 16));
        }
    }

    public readonly IPAddress Destination
    {
        get
        {
            fixed (byte* p = Daddr)
                return Unmap(new ReadOnlySpan<byte>(p, 16));
        }
    }

    private static IPAddress Unmap(ReadOnlySpan<byte> a)
    {
        var ip = new IPAddress(a);
        return ip.IsIPv4MappedToIPv6 ? ip.MapToIPv4() : ip;
    }
    public readonly ushort SourcePort => (ushort)IPAddress.NetworkToHostOrder((short)SportBe);
    public readonly ushort DestinationPort => (ushort)IPAddress.NetworkToHostOrder((short)DportBe);
}

/// <summary>
/// The kernel drop tracer (bpf/zonlb_trace.bpf.c): a BPF program on the skb:kfree_skb tracepoint (tp_btf, no
/// tracefs needed) that reports, through a ring buffer, every packet the kernel drops whose IPv4 source or
/// destination is a watched address, with the drop reason and the dropping function. Dispose detaches it.
/// </summary>
public sealed unsafe class DropTracer : IDisposable
{
    private nint _obj, _link, _ring;
    private readonly int _watchMap;
    private GCHandle _self;
    private readonly Queue<DropEvent> _pending = new();

    private DropTracer(nint obj, nint link, int watchMap, int ringMap)
    {
        _obj = obj;
        _link = link;
        _watchMap = watchMap;
        _self = GCHandle.Alloc(this);
        _ring = LibBpf.ring_buffer__new(ringMap, &OnSample, (void*)GCHandle.ToIntPtr(_self), 0);
        if (_ring == 0)
            throw NativeException.FromLastError("ring_buffer__new(drops)");
    }

    public static string DefaultObjectPath => BpfObjectFile.PathOf("zonlb_trace.o");

    /// <summary>Where the kernel publishes its BTF, which the CO-RE tracer needs at build and at load.</summary>
    public const string KernelBtfPath = "/sys/kernel/btf/vmlinux";

    /// <summary>Why the tracer cannot run here (no object built, or a kernel without BTF), or null when it can try.</summary>
    public static string? UnavailableReason(string? objectPath = null, string kernelBtf = KernelBtfPath)
    {
        string path = objectPath ?? DefaultObjectPath;
        if (!File.Exists(path))
            return $"this build has no drop tracer ({path}): it was built on a machine whose kernel had no BTF " +
                   $"({KernelBtfPath}), which the tracer's CO-RE build needs; rebuild where the kernel has CONFIG_DEBUG_INFO_BTF=y. " +
                   "Everything but trace works without it.";
        if (!File.Exists(kernelBtf))
            return $"this kernel has no BTF ({kernelBtf}; CONFIG_DEBUG_INFO_BTF=y), which the drop tracer needs to attach to " +
                   "skb:kfree_skb and read the kernel's structures. Everything but trace works without it.";
        return null;
    }

    public static DropTracer Start(IEnumerable<IPAddress> watch, string? objectPath = null)
    {
        string path = objectPath ?? DefaultObjectPath;
        nint obj = BpfObjectFile.OpenAndLoad(path, "bpf/zonlb_trace.bpf.c", "does the kernel have BTF and the skb:kfree_skb tracepoint?");
        try
        {
            int watchMap = BpfObjectFile.MapFd(obj, "watch_addrs");
            int ringMap = BpfObjectFile.MapFd(obj, "drops");
            nint prog = BpfObjectFile.Program(obj, "zonlb_trace_kfree_skb");
            foreach (var a in watch)
            {
                var key = MapAddress.From(a);
                byte one = 1;
                int e = LibBpf.bpf_map_update_elem(watchMap, &key, &one, LibBpf.BPF_ANY);
                if (e != 0)
                    throw new NativeException("bpf_map_update_elem(watch_addrs)", -e);
            }
            nint link = LibBpf.bpf_program__attach(prog);
            if (link == 0)
                throw NativeException.FromLastError("attach to tracepoint skb:kfree_skb");
            return new DropTracer(obj, link, watchMap, ringMap);
        }
        catch
        {
            LibBpf.bpf_object__close(obj);
            throw;
        }
    }

    [UnmanagedCallersOnly]
    private static int OnSample(void* ctx, void* data, nuint size)
    {
        var self = (DropTracer)GCHandle.FromIntPtr((nint)ctx).Target!;
        if (size >= (nuint)sizeof(DropEvent))
            self._pending.Enqueue(*(DropEvent*)data);
        return 0;
    }

    /// <summary>Waits up to timeoutMs for drops and returns those that arrived.</summary>
    public List<DropEvent> Poll(int timeoutMs)
    {
        int n = LibBpf.ring_buffer__poll(_ring, timeoutMs);
        if (n < 0 && -n != Errno.EINTR)
            throw new NativeException("ring_buffer__poll", -n);
        var list = new List<DropEvent>(_pending.Count);
        while (_pending.TryDequeue(out var e))
            list.Add(e);
        return list;
    }

    public void Dispose()
    {
        if (_ring != 0)
        {
            LibBpf.ring_buffer__free(_ring);
            _ring = 0;
        }
        if (_link != 0)
        {
            LibBpf.bpf_link__destroy(_link);
            _link = 0;
        }
        if (_obj != 0)
        {
            LibBpf.bpf_object__close(_obj);
            _obj = 0;
        }
        if (_self.IsAllocated)
            _self.Free();
    }
}

/// <summary>Names for the kernel's drop reasons and code addresses.</summary>
public static class KernelSymbols
{
    /// <summary>enum skb_drop_reason names (NO_SOCKET, TCP_CSUM, ...) from the tracepoint's format in tracefs,
    /// mounting tracefs when it is not; empty when unavailable.</summary>
    public static Dictionary<uint, string> DropReasonNames()
    {
        const string dir = "/sys/kernel/tracing";
        string format = Path.Combine(dir, "events/skb/kfree_skb/format");
        if (!File.Exists(format) && Directory.Exists(dir))
            MountTracefs(dir);
        var names = new Dictionary<uint, string>();
        if (!File.Exists(format))
            return names;
        string text = File.ReadAllText(format);
        foreach (System.Text.RegularExpressions.Match m in System.Text.RegularExpressions.Regex.Matches(text, @"\{ (\d+), ""([A-Z0-9_]+)"" \}"))
            names[uint.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)] = m.Groups[2].Value;
        return names;
    }

    private static void MountTracefs(string dir)
    {
        try
        {
            using var p = System.Diagnostics.Process.Start("mount", new[] { "-t", "tracefs", "nodev", dir });
            p?.WaitForExit(5000);
        }
        catch (System.ComponentModel.Win32Exception)
        {
        }
    }

    /// <summary>A resolver of kernel addresses to "function+0xoff" from /proc/kallsyms (root sees addresses).</summary>
    public static Func<ulong, string> KallsymsResolver()
    {
        var addrs = new List<(ulong Addr, string Name)>();
        try
        {
            foreach (var line in File.ReadLines("/proc/kallsyms"))
            {
                var parts = line.Split(' ', 4);
                if (parts.Length < 3 || parts[1] is not ("T" or "t"))
                    continue;
                if (ulong.TryParse(parts[0], System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture, out ulong a) && a != 0)
                    addrs.Add((a, parts[2]));
            }
        }
        catch (IOException)
        {
        }
        addrs.Sort((x, y) => x.Addr.CompareTo(y.Addr));
        var keys = addrs.Select(x => x.Addr).ToArray();
        return addr =>
        {
            int i = Array.BinarySearch(keys, addr);
            if (i < 0)
                i = ~i - 1;
            return i < 0 ? $"0x{addr:x}" : $"{addrs[i].Name}+0x{addr - addrs[i].Addr:x}";
        };
    }
}
