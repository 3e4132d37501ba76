using System.Net;
using ZonLb.Engine.Configuration;
using ZonLb.Engine.Routing;
using ZonLb.Native.Interop;
using ZonLb.Native.Netlink;

namespace ZonLb.Engine.Pipeline;

/// <summary>Turns configured services into running ones: addresses as numbers and a SNAT address per backend.</summary>
public static class ServiceResolver
{
    public static ResolvedService Resolve(ServiceConfig s, EngineOptions o, RtNetlink nl, int workers)
    {
        var backends = new List<ResolvedBackend>();
        foreach (var b in s.Backends)
            backends.Add(ResolveBackend(s, b, nl));
        return new ResolvedService(s.Name, KernelRouteSource.FromAddress(s.Vip), s.Protocol, s.Port, backends.ToArray(), o.MaglevTableSize, workers);
    }

    /// <summary>The SNAT address toward a backend: the service's snat, else the kernel's preferred source toward
    /// the backend, else the first IPv4 address of the interface the route leaves by.</summary>
    public static ResolvedBackend ResolveBackend(ServiceConfig s, BackendConfig b, RtNetlink nl)
    {
        uint bip = KernelRouteSource.FromAddress(b.Address);
        if (s.Snat != null)
            return new ResolvedBackend(bip, b.Port, KernelRouteSource.FromAddress(s.Snat), b.Weight);
        var route = nl.GetRoute(b.Address, out int errno);
        if (route == null)
            throw new InvalidOperationException(
                $"service {s.Name}: no route to backend {b.Address} ({new NativeException("route lookup", errno).Message}); add a route or set snat");
        IPAddress? src = route.PreferredSource ?? nl.GetIPv4Addresses(route.OutIfIndex).FirstOrDefault();
        if (src == null)
            throw new InvalidOperationException($"service {s.Name}: the interface toward backend {b.Address} has no IPv4 address; set snat");
        return new ResolvedBackend(bip, b.Port, KernelRouteSource.FromAddress(src), b.Weight);
    }
}
