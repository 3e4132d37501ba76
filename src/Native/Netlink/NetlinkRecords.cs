using System.Buffers.Binary;
using System.Net;
using System.Net.NetworkInformation;
using ZonLb.Native.Interop;

namespace ZonLb.Native.Netlink;

/// <summary>An interface as rtnetlink reports it.</summary>
/// <param name="LinkNetnsId">For a veth or other link whose other end lives in another namespace: that
/// namespace's id as this namespace numbers it (IFLA_LINK_NETNSID); -1 otherwise.</param>
/// <param name="VlanId">For an 802.1Q VLAN interface: its VLAN id; -1 otherwise.</param>
/// <param name="ParentIndex">For a VLAN interface: the index of the interface it is stacked on (IFLA_LINK); 0 otherwise.</param>
public sealed record LinkInfo(int Index, string Name, PhysicalAddress Mac, int Mtu, bool IsUp, int LinkNetnsId = -1,
    int VlanId = -1, int ParentIndex = 0);

/// <summary>The kernel's answer to "how do I reach this address": egress interface, gateway (if any), preferred source.</summary>
public sealed record RouteInfo(int OutIfIndex, IPAddress? Gateway, IPAddress? PreferredSource);

/// <summary>A neighbour (ARP) entry: its NUD state and link-layer address, if known.</summary>
public readonly record struct NeighborInfo(ushort State, PhysicalAddress? Mac)
{
    public const ushort NUD_INCOMPLETE = 0x01, NUD_REACHABLE = 0x02, NUD_STALE = 0x04, NUD_DELAY = 0x08,
        NUD_PROBE = 0x10, NUD_FAILED = 0x20, NUD_NOARP = 0x40, NUD_PERMANENT = 0x80;

    /// <summary>True when the MAC can be used to send now.</summary>
    public bool IsUsable => Mac != null &&
        (State & (NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_NOARP | NUD_PERMANENT)) != 0;
}
