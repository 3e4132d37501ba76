using System.Text.Json;
using System.Text.Json.Nodes;

namespace ZonLb.Engine.Control;

/// <summary>
/// The control socket's protocol: one JSON object per line each way.
/// Request: {"command": "stats", "args": {...}}. Response: {"ok": true, "result": ...} or {"ok": false, "error": "..."}.
/// Commands: status, stats, conntrack.list {service?, limit?}, conntrack.flush {service?}, neighbors.list,
/// routes.list, backend {action, service, address, port?, weight?}, reload, config.show.
/// </summary>
public static class ControlProtocol
{
    /// <summary>snake_case names, compact: how requests and results are serialized.</summary>
    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DictionaryKeyPolicy = null,
        WriteIndented = false,
    };

    /// <summary>A request line (without the newline).</summary>
    public static string Request(string command, JsonObject? args = null) =>
        new JsonObject { ["command"] = command, ["args"] = args ?? new JsonObject() }.ToJsonString();

    /// <summary>A success response carrying a result.</summary>
    public static string Ok(object? result) =>
        new JsonObject { ["ok"] = true, ["result"] = JsonSerializer.SerializeToNode(result, Json) }.ToJsonString();

    /// <summary>A failure response carrying a message.</summary>
    public static string Error(string message) =>
        new JsonObject { ["ok"] = false, ["error"] = message }.ToJsonString();
}
