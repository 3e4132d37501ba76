using System.Runtime.InteropServices;

namespace ZonLb.Native.Bpf;

// Mirrors of bpf/zonlb_abi.h. Addresses and ports in network byte order, as in the packet.

/// <summary>An address field of the maps: 16 bytes, IPv4 as IPv4-mapped IPv6.</summary>
[System.Runtime.CompilerServices.InlineArray(16)]
internal struct MapAddress
{
    private byte _b0;

    public static MapAddress From(System.Net.IPAddress a)
    {
        var m = new MapAddress();
        Span<byte> b = m;
        var v6 = a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? a.MapToIPv6() : a;
        v6.TryWriteBytes(b, out _);
        return m;
    }
}

/// <summary>A key of the steering program's services map (not the engine's own service key: this one is the wire
/// format the BPF program reads). struct zonlb_service_key { __u8 addr[16]; __be16 port; __u8 proto; __u8 pad; };</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct SteeredServiceKey
{
    public MapAddress Addr;
    public ushort PortBe;
    public byte Proto;
    public byte Pad;
}

/// <summary>struct zonlb_nat_key { __u8 addr[16]; __u8 proto; __u8 pad[3]; };</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct NatKey
{
    public MapAddress Addr;
    public byte Proto;
    public byte Pad0, Pad1, Pad2;
}

/// <summary>struct zonlb_nat_range { __u16 port_min; __u16 port_max; } in host byte order.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct NatRange
{
    public ushort PortMin;
    public ushort PortMax;
}

/// <summary>struct zonlb_if_slots { __u32 first; __u32 count; }: an interface's XSKMAP slots.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct IfSlots
{
    public uint First;
    public uint Count;
}

/// <summary>struct zonlb_frag_key { __u8 saddr[16]; __u8 daddr[16]; __u32 id; __u8 proto; __u8 pad[3]; }: a datagram whose
/// first fragment was steered (the id as in the packet: IPv4's 16 bits in network order, IPv6's 32).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FragKey
{
    public MapAddress Source;
    public MapAddress Destination;
    public uint Id;
    public byte Proto;
    public byte Pad0, Pad1, Pad2;
}

/// <summary>struct zonlb_owner { __u32 pid; __u32 pad; __u64 start_time; }: the process that attached the program.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct Owner
{
    public uint Pid;
    public uint Pad;
    public ulong StartTime;
}

/// <summary>Counter slots of the program's per-CPU xdp_stats array (enum zonlb_xdp_counter).</summary>
public enum XdpProgramCounter
{
    Seen = 0,
    Redirected = 1,
    Passed = 2,
    NoSocket = 3,
}

internal static class SteeringAbi
{
    public const int MaxXsks = 256;
    public const int CounterCount = 4;
    public const string ProgramName = "zonlb_xdp";
}
