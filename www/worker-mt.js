// The engine's worker on a cross-origin isolated page: the threaded build, whose mat-muls
// a pool of workers shares (wasm-bindgen-rayon).
import * as wasm from "./wasm-mt/ouvert.js";
import { serve } from "./worker-core.js";

serve(wasm);
