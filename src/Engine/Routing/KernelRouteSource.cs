using ZonLb.Engine.Packets;

namespace ZonLb.Engine.Routing;

/// <summary>
/// A worker's view of the kernel's routes and neighbours: the answers <see cref="RouteResolver"/> has published, and
/// a question queued to it for what it has not (the caller holds the frame and asks again). Never a system call.
/// Answers older than the cache time are refreshed in the background while still used.
/// </summary>
internal sealed class KernelRouteSource : IRouteSource
{
    private readonly RouteResolver _resolver;
    private readonly long _freshMs;

    /// <param name="freshMs">How long an answer is used without asking again (neighbor_cache_seconds).</param>
    public KernelRouteSource(RouteResolver resolver, long freshMs)
    {
        _resolver = resolver;
        _freshMs = freshMs;
    }

    public RouteAnswer Lookup(IpAddr destination)
    {
        if (!_resolver.TryGetRoute(destination, out var answer))
        {
            _resolver.AskRoute(destination);
            return RouteAnswer.Asked;
        }
        if (Environment.TickCount64 - answer.AnsweredAt >= _freshMs)
            _resolver.AskRoute(destination); // used meanwhile: a route seldom changes within seconds
        return answer.Value;
    }

    public byte[]? Neighbor(int ifIndex, IpAddr address)
    {
        if (!_resolver.TryGetNeighbor(ifIndex, address, out var answer))
        {
            _resolver.AskNeighbor(ifIndex, address);
            return null;
        }
        if (Environment.TickCount64 - answer.AnsweredAt >= _freshMs)
            _resolver.AskNeighbor(ifIndex, address);
        return answer.Value;
    }

    /// <summary>The resolver probes a neighbour it finds unknown when asked about it.</summary>
    public void Resolve(int ifIndex, IpAddr address) => _resolver.AskNeighbor(ifIndex, address);
}
