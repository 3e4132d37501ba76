using ZonLb.Engine.Packets;

namespace ZonLb.Engine.Pipeline;

/// <summary>A backend with the source address the engine uses toward it.</summary>
public readonly record struct ResolvedBackend(uint Ip, ushort Port, uint SnatIp);

/// <summary>A service with its addresses as numbers and its backends' SNAT addresses decided.</summary>
public sealed record ResolvedService(string Name, uint Vip, IpProtocol Protocol, ushort Port, ResolvedBackend[] Backends);

/// <summary>(VIP, protocol, port) of a service; port 0 for ICMP echo.</summary>
public readonly record struct ServiceKey(uint Vip, IpProtocol Protocol, ushort Port);
