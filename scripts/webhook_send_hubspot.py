# Sends one signed HubSpot deal.propertyChange (dealstage) webhook: PORT DEAL_ID STAGE SECRET.
# Used by scripts/webhook_latency.sh.
import base64, hashlib, hmac, json, sys, time, urllib.request
port, deal, stage, secret = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
uri = f"http://127.0.0.1:{port}/api/webhooks/demo/hubspot"
now = int(time.time() * 1000)
body = json.dumps([{
    "eventId": now, "subscriptionId": 1, "portalId": 1, "appId": 1, "occurredAt": now,
    "subscriptionType": "deal.propertyChange", "attemptNumber": 0, "objectId": int(deal),
    "propertyName": "dealstage", "propertyValue": stage, "changeSource": "CRM_UI"}]).encode()
ts = str(now)
sig = base64.b64encode(hmac.new(secret.encode(), b"POST" + uri.encode() + body + ts.encode(), hashlib.sha256).digest()).decode()
req = urllib.request.Request(uri, data=body, method="POST", headers={
    "Content-Type": "application/json", "X-HubSpot-Signature-v3": sig,
    "X-HubSpot-Request-Timestamp": ts})
t0 = time.time()
with urllib.request.urlopen(req) as r:
    print(r.status, r.read().decode(), f"ack {1000*(time.time()-t0):.0f} ms")
