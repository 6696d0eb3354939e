// The engine's worker, one-thread build.
import * as wasm from "./wasm/ouvert.js";
import { serve } from "./worker-core.js";

serve(wasm);
