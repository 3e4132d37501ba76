using System.Runtime.InteropServices;

namespace ZonLb.Native.Bpf;

// Mirrors of bpf/zonlb_abi.h. Addresses and ports in network byte order, as in the packet.

/// <summary>struct zonlb_service_key { __be32 addr; __be16 port; __u8 proto; __u8 pad; };</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct ServiceKey
{
    public uint AddrBe;
    public ushort PortBe;
    public byte Proto;
    public byte Pad;
}

/// <summary>struct zonlb_nat_key { __be32 addr; __u8 proto; __u8 pad[3]; };</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct NatKey
{
    public uint AddrBe;
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
