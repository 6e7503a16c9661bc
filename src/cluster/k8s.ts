// The subset of Kubernetes v1 objects vxtrace reads, in the shape `kubectl get nodes,pods -A -o json`
// prints (a v1 List). Both the API source and `--cluster FILE` produce these; the lab writes them.

export const FLANNEL_PUBLIC_IP = 'flannel.alpha.coreos.com/public-ip';
export const FLANNEL_BACKEND_DATA = 'flannel.alpha.coreos.com/backend-data';
export const FLANNEL_BACKEND_TYPE = 'flannel.alpha.coreos.com/backend-type';
/** flannel with EnableIPv6: the IPv6 VTEP's (flannel-v6.<VNI>) underlay address and backend data. */
export const FLANNEL_PUBLIC_IPV6 = 'flannel.alpha.coreos.com/public-ipv6';
export const FLANNEL_BACKEND_V6_DATA = 'flannel.alpha.coreos.com/backend-v6-data';
export const FLANNEL_KUBE_SUBNET_MANAGER = 'flannel.alpha.coreos.com/kube-subnet-manager';
/** Lab only: the network namespace on this machine that holds the node (or pod). Real nodes never carry it. */
export const VXTRACE_NETNS = 'vxtrace.io/netns';

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface NodeAddress {
  type: 'InternalIP' | 'ExternalIP' | 'Hostname' | 'InternalDNS' | 'ExternalDNS' | string;
  address: string;
}

export interface V1Node {
  apiVersion: 'v1';
  kind: 'Node';
  metadata: ObjectMeta;
  spec: { podCIDR?: string; podCIDRs?: string[] };
  status: { addresses?: NodeAddress[] };
}

export interface V1Pod {
  apiVersion: 'v1';
  kind: 'Pod';
  metadata: ObjectMeta;
  spec: { nodeName?: string; hostNetwork?: boolean; containers?: { name: string; image?: string }[] };
  status: { phase?: string; podIP?: string; podIPs?: { ip: string }[]; hostIP?: string };
}

export interface V1List {
  apiVersion: 'v1';
  kind: 'List';
  metadata?: { resourceVersion?: string };
  items: (V1Node | V1Pod)[];
}

/** flannel's backend-data annotation for the vxlan backend. */
export interface FlannelVxlanBackendData {
  VNI: number;
  VtepMAC: string;
}

/** What a Node's backend-data annotation says (its VNI, its VTEP MAC in lower case); {} when absent or not JSON. */
export function flannelBackendData(node: V1Node, annotation: string = FLANNEL_BACKEND_DATA): { vni?: number; vtepMac?: string } {
  const text = node.metadata.annotations?.[annotation];
  if (!text) return {};
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null) return {};
    const o = v as Record<string, unknown>;
    return {
      vni: typeof o.VNI === 'number' ? o.VNI : undefined,
      vtepMac: typeof o.VtepMAC === 'string' ? o.VtepMAC.toLowerCase() : undefined,
    };
  } catch {
    return {};
  }
}
