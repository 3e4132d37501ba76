using System.Net;
using ZonLb.Engine.Configuration;
using ZonLb.Engine.Nat;
using ZonLb.Engine.Packets;
using ZonLb.Native.Interop;
using ZonLb.Native.Netlink;

namespace ZonLb.Engine.Services;

/// <summary>Turns configured services into running ones: addresses as numbers and a SNAT address per backend.</summary>
internal static class ServiceResolver
{
    public static ResolvedService Resolve(ServiceConfig s, EngineOptions o, RtNetlink nl, int workers)
    {
        var backends = new List<ResolvedBackend>();
        foreach (var b in s.Backends)
            backends.Add(ResolveBackend(s, b, nl));
        return new ResolvedService(s.Name, IpAddr.From(s.Vip), s.Protocol, s.Port, backends.ToArray(), o.MaglevTableSize, workers,
            s.Mode == ForwardingMode.Dsr);
    }

    /// <summary>The SNAT addresses toward a backend: the service's snat list, else the kernel's preferred source toward
    /// the backend, else the first address of the backend's family (IPv6: not link-local) of the interface the
    /// route leaves by.</summary>
    public static ResolvedBackend ResolveBackend(ServiceConfig s, BackendConfig b, RtNetlink nl)
    {
        var bip = IpAddr.From(b.Address);
        if (s.Mode == ForwardingMode.Dsr)
            return new ResolvedBackend(bip, b.Port, default, b.Weight); // no source translation
        if (s.Snat.Count > 0)
            return ResolvedBackend.WithSnat(bip, b.Port, new SnatAddresses(s.Snat.Select(IpAddr.From).ToArray()), b.Weight);
        var route = nl.GetRoute(b.Address, out int errno);
        if (route == null)
            throw new InvalidOperationException(
                $"service {s.Name}: no route to backend {b.Address} ({new NativeException("route lookup", errno).Message}); add a route or set snat");
        bool v6 = !bip.IsV4;
        IPAddress? src = route.PreferredSource ??
            (v6 ? nl.GetIPv6Addresses(route.OutIfIndex) : nl.GetIPv4Addresses(route.OutIfIndex)).FirstOrDefault();
        if (src == null)
            throw new InvalidOperationException(
                $"service {s.Name}: the interface toward backend {b.Address} has no {(v6 ? "global IPv6" : "IPv4")} address; set snat");
        return new ResolvedBackend(bip, b.Port, IpAddr.From(src), b.Weight);
    }
}
