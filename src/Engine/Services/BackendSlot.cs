namespace ZonLb.Engine.Services;

/// <summary>
/// A backend of a running service as one version of the service table has it: what it is and whether it takes
/// new flows (immutable: a change makes a new slot), and its counters (one block per worker, carried from version
/// to version). Slots are never removed from a service, only marked removed, so that connections can keep
/// referring to their backend by index.
/// </summary>
internal sealed record BackendSlot
{
    public BackendSlot(ResolvedBackend info, int workers = 1)
    {
        Info = info;
        PerWorker = FlowCounters.For(workers);
    }

    public ResolvedBackend Info { get; init; }
    /// <summary>Taken out by an operator (backend disable).</summary>
    public bool Disabled { get; init; }
    /// <summary>Taken out by the health checker.</summary>
    public bool Unhealthy { get; init; }
    /// <summary>Removed from the configuration; kept while its connections drain.</summary>
    public bool Removed { get; init; }

    public bool TakesNewFlows => !Disabled && !Unhealthy && !Removed && Info.Weight > 0;

    public string State => Removed ? "removed" : Disabled ? "disabled" : Unhealthy ? "down" : Info.Weight == 0 ? "weight-0" : "up";

    /// <summary>Counters, one block per worker (each written by its worker only); <see cref="Total"/> sums them.</summary>
    public FlowCounters[] PerWorker { get; init; }

    public FlowCounters Total => FlowCounters.Sum(PerWorker);
}
