using System.Runtime.CompilerServices;
using ZonLb.Engine.Configuration;
using ZonLb.Engine.Counters;
using ZonLb.Engine.Pipeline;
using ZonLb.Engine.Routing;
using ZonLb.Engine.Services;
using ZonLb.PipelineTesting;

namespace ZonLb.PipelineTesting;

/// <summary>
/// A pipeline on its own, as unit tests and benchmarks use one: a single worker over a service registry of its own,
/// whose changes are published to it at once (in the data path, the control plane publishes versions that the
/// workers adopt between batches). Shared by the unit tests and the benchmarks (linked into both).
/// </summary>
internal static class StandalonePipeline
{
    private static readonly ConditionalWeakTable<PacketProcessor, ServiceRegistry> Registries = new();

    /// <summary>A single-worker pipeline over these services.</summary>
    /// <param name="seed">Seeds the NAT port choice and early drop's sampling (0: random); two pipelines with one
    /// seed choose alike.</param>
    public static PacketProcessor Create(IReadOnlyList<ResolvedService> services, IReadOnlyList<(int IfIndex, byte[] Mac)> ports,
        IRouteSource routes, EngineOptions options, EngineCounters counters, uint seed = 0)
    {
        var registry = new ServiceRegistry(1, options.NatPortMin, options.NatPortMax);
        foreach (var s in services)
            registry.Add(s);
        var p = new PacketProcessor(registry.Snapshot(), 0, ports, routes, options, counters, seed);
        Registries.Add(p, registry);
        return p;
    }

    /// <summary>Adds a service; returns its index.</summary>
    public static int AddService(this PacketProcessor p, ResolvedService s) => Change(p, r => r.Add(s));

    /// <summary>Stops a service from taking new flows; its connections drain.</summary>
    public static void RemoveService(this PacketProcessor p, int index) => Change(p, r => { r.Remove(index); return 0; });

    /// <summary>Adds a backend to a service (or revives a removed one at the same address and port).</summary>
    public static int AddBackend(this PacketProcessor p, int serviceIndex, ResolvedBackend b) => Change(p, r => r.AddBackend(serviceIndex, b));

    /// <summary>Takes a backend out of new-flow selection (as a failed health check does), or back.</summary>
    public static void SetBackendOut(this PacketProcessor p, int serviceIndex, int backend, bool isOut) =>
        Change(p, r => { r.UpdateBackend(serviceIndex, backend, b => b with { Unhealthy = isOut }); return 0; });

    /// <summary>What a worker's round does for expiry, at once: forgets old fragments and sweeps the next budget slots
    /// of the table for idle connections (releasing their NAT ports); returns how many went.</summary>
    public static int ExpireConnections(this PacketProcessor p, long now, int budget)
    {
        p.ExpireFragments(now);
        return p.SweepConnections(now, budget);
    }

    private static T Change<T>(PacketProcessor p, Func<ServiceRegistry, T> change)
    {
        if (!Registries.TryGetValue(p, out var registry))
            throw new InvalidOperationException("not a standalone pipeline: a data path's processor gets its services from the control plane");
        T result = change(registry);
        p.Use(registry.Snapshot());
        return result;
    }
}
